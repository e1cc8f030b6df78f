"""Pool settings of a server in the registry: validation, the upstream config, import/export, scaling events."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from servers import mcp_json, services
from servers.forms import McpServerForm
from servers.hooks import django_hooks
from servers.models import McpServer, ScalingEvent, Transport

PYTHON = sys.executable


def stdio(**fields: object) -> McpServer:
    return McpServer(name="Spin", slug="spin", transport=Transport.STDIO, command=PYTHON, **fields)


def http(**fields: object) -> McpServer:
    values: dict[str, Any] = {"transport": Transport.STREAMABLE_HTTP, "url": "https://a.example/mcp"}
    return McpServer(name="Remote", slug="remote", **(values | fields))


def errors_of(server: McpServer) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        server.full_clean()
    return caught.value.message_dict


@pytest.mark.django_db
def test_defaults_are_one_instance_least_connections() -> None:
    server = stdio()
    server.full_clean()
    config = server.upstream_config()

    assert (config.min_instances, config.max_instances, config.balancing_policy) == (1, 1, "least_connections")
    assert config.instance_max_concurrent_calls == 0 and config.replica_urls == ()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"min_instances": 0}, "min_instances", "greater than or equal to 1"),
        ({"max_instances": 17}, "max_instances", "less than or equal to 16"),
        ({"min_instances": 3, "max_instances": 2}, "max_instances", "at least the minimum"),
        ({"balancing_policy": "random"}, "balancing_policy", "not a valid choice"),
        ({"replica_urls": ["https://b.example/mcp"]}, "replica_urls", "Only HTTP servers"),
    ],
)
def test_stdio_pool_errors_name_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    assert message in " ".join(errors_of(stdio(**fields))[field])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("urls", "message"),
    [
        (["ftp://b.example/mcp"], "Not an http:// or https:// URL: ftp://b.example/mcp"),
        (["not a url"], "Not an http:// or https:// URL"),
        ("https://b.example/mcp", "JSON list of URLs"),
        (["https://a.example/mcp"], "appear once"),
        (["https://b.example/mcp", "https://b.example/mcp"], "appear once"),
    ],
)
def test_replica_urls_are_checked(urls: object, message: str) -> None:
    assert message in " ".join(errors_of(http(replica_urls=urls))["replica_urls"])


@pytest.mark.django_db
def test_http_replicas_reach_the_upstream_config() -> None:
    server = http(replica_urls=["https://b.example/mcp"], balancing_policy="affinity", instance_max_concurrent_calls=4)
    server.full_clean()
    config = server.upstream_config()

    assert config.urls == ("https://a.example/mcp", "https://b.example/mcp")
    assert (config.balancing_policy, config.instance_max_concurrent_calls) == ("affinity", 4)
    assert not config.autoscaled and config.single().urls == ("https://a.example/mcp",)


@pytest.mark.django_db
def test_form_reports_pool_errors_on_their_fields() -> None:
    data = {
        "name": "Spin",
        "slug": "spin",
        "transport": "stdio",
        "command": PYTHON,
        "connect_timeout": 10,
        "call_timeout": 60,
        "max_concurrent_calls": 16,
        "health_check_interval": 30,
        "idle_timeout": 0,
        "min_instances": 4,
        "max_instances": 2,
        "balancing_policy": "round_robin",
        "instance_max_concurrent_calls": 0,
        "replica_urls": '["https://b.example/mcp"]',
    }
    form = McpServerForm(data)

    assert not form.is_valid()
    assert "at least the minimum" in form.errors["max_instances"][0]
    assert "Only HTTP servers" in form.errors["replica_urls"][0]


@pytest.mark.django_db
def test_changing_the_pool_restarts_live_sessions() -> None:
    server = services.save_server(stdio())
    previous = McpServer.objects.get(pk=server.pk)
    server.max_instances = 4
    services.save_server(server, previous=previous)

    assert McpServer.objects.get(pk=server.pk).config_version == previous.config_version + 1


@pytest.mark.django_db
def test_pool_fields_round_trip_through_mcp_json() -> None:
    server = services.save_server(http(replica_urls=["https://b.example/mcp"], balancing_policy="weighted"))
    entry = mcp_json.export_entry(server, hub_fields=True)
    assert entry["replica_urls"] == ["https://b.example/mcp"] and entry["balancing_policy"] == "weighted"
    server.delete()

    report = mcp_json.import_servers({"remote": entry})
    imported = McpServer.objects.get(slug="remote")

    assert report.created == ["remote"]
    assert imported.replica_urls == ["https://b.example/mcp"] and imported.balancing_policy == "weighted"
    bad = mcp_json.import_servers({"other": {"url": "https://c.example/mcp", "max_instances": 99}})
    assert bad.rejected and bad.rejected[0][1].startswith("max_instances:")


@pytest.mark.django_db
def test_record_scaling_writes_one_event() -> None:
    server = services.save_server(stdio(min_instances=1, max_instances=4))

    event = ScalingEvent.record(server.pk, 1, 2, "2.5 calls in flight per instance for 5 s")

    assert event is not None and list(server.scaling_events.all()) == [event]
    assert ScalingEvent.record(server.pk + 1000, 1, 2, "deleted server") is None


@pytest.mark.django_db(transaction=True)
def test_the_pool_hook_records_events_in_the_background_in_order() -> None:
    server = services.save_server(stdio(min_instances=1, max_instances=4))

    async def scale() -> None:
        async with anyio.create_task_group() as owner:
            hooks = django_hooks(owner.start_soon)
            hooks.on_scale(server.pk, 2, 3, "load")
            hooks.on_scale(server.pk, 3, 4, "more load")
        # The owner's task group ends once the writes it started are done.

    anyio.run(scale)

    events = ScalingEvent.objects.filter(server=server).order_by("id")
    assert [(e.from_instances, e.to_instances, e.reason) for e in events] == [(2, 3, "load"), (3, 4, "more load")]


@pytest.fixture
def staff(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_admin_shows_pool_fields_and_recent_scaling_events(staff: Client) -> None:
    server = services.save_server(stdio(min_instances=1, max_instances=4))
    for n in range(25):
        ScalingEvent.record(server.pk, 1, 2, f"event {n:02d}")

    html = staff.get(reverse("admin:servers_mcpserver_change", args=[server.pk])).content.decode()
    listing = staff.get(reverse("admin:servers_scalingevent_changelist")).content.decode()

    assert 'name="min_instances"' in html and 'name="replica_urls"' in html
    assert "event 24" in html and "event 05" in html and "event 04" not in html  # newest 20
    assert html.index("event 24") < html.index("event 23")  # newest first
    assert "event 00" in listing
    assert staff.get(reverse("admin:servers_scalingevent_add")).status_code == 403


@pytest.mark.django_db
def test_api_reads_and_validates_pool_fields(staff: Client) -> None:
    url = "/api/servers/"
    body = {"name": "Remote", "slug": "remote", "transport": "streamable_http", "url": "https://a.example/mcp"}

    bad = staff.post(url, {**body, "replica_urls": ["ftp://b.example/mcp"]}, content_type="application/json")
    good = staff.post(
        url, {**body, "replica_urls": ["https://b.example/mcp"], "balancing_policy": "affinity"}, "application/json"
    )

    assert bad.status_code == 400 and "replica_urls" in bad.json()
    assert good.status_code == 201, good.content
    assert good.json()["replica_urls"] == ["https://b.example/mcp"] and good.json()["balancing_policy"] == "affinity"
