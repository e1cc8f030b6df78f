"""The registry admin, through Django's test client as a logged-in superuser."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import CheckboxInput
from django.test import Client
from django.urls import reverse

from servers.models import McpServer, Prompt, Resource, Status, Tool, Transport
from servers.secrets import MASK
from servers.upstream import stderr
from tests.servers.unusable_values import UNUSABLE, UNUSABLE_IDS, as_form_text

PYTHON = sys.executable
CHANGELIST = reverse("admin:servers_mcpserver_changelist")
ADD = reverse("admin:servers_mcpserver_add")
IMPORT = reverse("admin:servers_mcpserver_import")


def change_url(server: McpServer) -> str:
    return reverse("admin:servers_mcpserver_change", args=[server.pk])


def form_data(response: Any) -> dict[str, Any]:
    """The POST data a browser would send back for an admin change form as rendered (main form and inlines)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for name, field in form.fields.items():
            bound = form[name]
            value = bound.value()
            if isinstance(field.widget, CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else value
    return data


def queued_discoveries() -> list[str]:
    """Ids of the servers whose discovery task sits in the Celery queue (Redis broker, no worker)."""
    broker = redis.Redis.from_url(settings.REDIS_BROKER_URL)
    ids = []
    for raw in broker.lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == "servers.tasks.discover_server":
            ids.append(headers["argsrepr"].strip("(),"))
    return ids


@pytest.fixture
def staff(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def server() -> McpServer:
    return McpServer.objects.create(
        name="Time", slug="time", command=PYTHON, args=["-m", "mcp_server_time"], env={"API_KEY": "sk-top-secret"}
    )


@pytest.mark.django_db
def test_list_shows_servers_with_tool_counts_status_and_transport(staff: Client, server: McpServer) -> None:
    Tool.objects.bulk_create(Tool(server=server, name=f"tool_{i}") for i in range(3))
    McpServer.objects.create(
        name="Remote", slug="remote", transport=Transport.SSE, url="https://r.example/sse", status=Status.DOWN
    )

    response = staff.get(CHANGELIST)

    assert response.status_code == 200
    rows = {row.slug: row for row in response.context["cl"].result_list}
    assert (rows["time"].tool_count, rows["remote"].tool_count) == (3, 0)
    html = response.content.decode()
    assert "Time" in html and "Remote" in html and "SSE (legacy HTTP)" in html
    assert "#c62828" in html  # down, in red
    assert "Import mcpServers JSON" in html


@pytest.mark.django_db
def test_list_counts_tools_in_one_query(
    staff: Client, server: McpServer, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    for i in range(10):
        other = McpServer.objects.create(name=f"S{i}", slug=f"s{i}", command=PYTHON)
        Tool.objects.create(server=other, name="t")
    staff.get(CHANGELIST)  # warm the session and content types

    with django_assert_max_num_queries(12):
        assert staff.get(CHANGELIST).status_code == 200


@pytest.mark.django_db
def test_filters_and_search(staff: Client, server: McpServer) -> None:
    McpServer.objects.create(name="Remote", slug="remote", url="https://r.example/mcp", transport="sse", tags=["ops"])

    def slugs(query: str) -> set[str]:
        return {s.slug for s in staff.get(CHANGELIST + query).context["cl"].result_list}

    assert slugs("?transport__exact=sse") == {"remote"}
    assert slugs("?tag=ops") == {"remote"}
    assert slugs("?q=mcp_server") == set()  # args are not searched
    assert slugs(f"?q={PYTHON}") == {"time"}
    assert slugs("?q=r.example") == {"remote"}
    assert "ops (1)" in staff.get(CHANGELIST + "?_facets=True").content.decode()  # facet counts


@pytest.mark.django_db
def test_add_server_through_the_form(staff: Client, django_capture_on_commit_callbacks: Any) -> None:
    data = form_data(staff.get(ADD))
    data.update(
        name="Everything",
        slug="everything",
        transport="stdio",
        command=PYTHON,
        args='["-m", "mcp_server_time"]',
        env='{"TOKEN": "abc"}',
        tags='["team-a"]',
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(ADD, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    server = McpServer.objects.get(slug="everything")
    assert (server.args, server.env, server.tags) == (["-m", "mcp_server_time"], {"TOKEN": "abc"}, ["team-a"])
    assert queued_discoveries() == [str(server.pk)]


@pytest.mark.django_db
def test_bad_command_is_an_error_on_the_command_field(staff: Client) -> None:
    data = form_data(staff.get(ADD))
    data.update(name="Bad", slug="bad", transport="stdio", command="no-such-program-mcphub")

    response = staff.post(ADD, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["command"]
    assert "no-such-program-mcphub" in errors["command"][0]
    assert not McpServer.objects.filter(slug="bad").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("args", '"--port 1"', "Must be a JSON list of strings."),
        ("args", "[1, 2]", "Must be a JSON list of strings."),
        ("args", "[not json", "Enter valid JSON"),
        ("env", '["A=B"]', "Must be a JSON object whose values are strings."),
        ("tool_denylist", '{"a": 1}', "Must be a JSON list of strings."),
        ("url", "ftp://example.com", "Only http:// and https:// URLs are allowed."),
    ],
)
def test_json_and_url_errors_show_on_their_field(staff: Client, field: str, value: str, message: str) -> None:
    data = form_data(staff.get(ADD))
    data.update(name="Bad", slug="bad", transport="stdio" if field != "url" else "sse", command=PYTHON)
    data[field] = value

    response = staff.post(ADD, data)

    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in errors[field][0]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), UNUSABLE, ids=UNUSABLE_IDS)
def test_values_the_hub_cannot_use_are_errors_on_their_field(staff: Client, field: str, value: object) -> None:
    data = form_data(staff.get(ADD))
    data.update(name="Bad", slug="bad", transport="stdio", command=PYTHON)
    data[field] = as_form_text(value)

    response = staff.post(ADD, data)

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    assert not McpServer.objects.filter(slug="bad").exists()


@pytest.mark.django_db
def test_env_values_are_masked_and_a_resubmitted_mask_keeps_the_secret(staff: Client, server: McpServer) -> None:
    page = staff.get(change_url(server))

    assert "sk-top-secret" not in page.content.decode()
    assert MASK in page.content.decode()

    data = form_data(page)
    assert json.loads(data["env"]) == {"API_KEY": MASK}
    data["env"] = json.dumps({"API_KEY": MASK, "NEW": "fresh"})
    data["description"] = "edited"
    response = staff.post(change_url(server), data)

    assert response.status_code == 302
    server.refresh_from_db()
    assert server.env == {"API_KEY": "sk-top-secret", "NEW": "fresh"}
    assert server.description == "edited"
    assert "sk-top-secret" not in staff.get(change_url(server)).content.decode()


@pytest.mark.django_db
def test_a_mask_for_a_name_with_no_stored_value_is_a_field_error(staff: Client, server: McpServer) -> None:
    data = form_data(staff.get(change_url(server)))
    data["env"] = json.dumps({"OTHER": MASK})

    response = staff.post(change_url(server), data)

    assert "OTHER" in response.context["adminform"].form.errors["env"][0]
    server.refresh_from_db()
    assert server.env == {"API_KEY": "sk-top-secret"}


@pytest.mark.django_db
def test_stderr_panel_shows_recent_lines_escaped(staff: Client, server: McpServer) -> None:
    stderr.append_lines(server.pk, ["starting up", "<script>alert(1)</script>"])

    html = staff.get(change_url(server)).content.decode()

    assert "starting up" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html


@pytest.mark.django_db
def test_tool_inline_toggles_enabled_and_keeps_the_rest(staff: Client, server: McpServer) -> None:
    tool = Tool.objects.create(server=server, name="get_time", title="Get time", description="Now.")
    data = form_data(staff.get(change_url(server)))
    assert "tools-0-name" not in data  # read-only
    del data["tools-0-enabled"]  # untick

    response = staff.post(change_url(server), data)

    assert response.status_code == 302
    tool.refresh_from_db()
    assert (tool.enabled, tool.name, tool.title) == (False, "get_time", "Get time")


@pytest.mark.django_db
def test_resources_and_prompts_are_shown_read_only(staff: Client, server: McpServer) -> None:
    Resource.objects.create(server=server, uri="fixture://hello", name="hello", mime_type="text/plain")
    Prompt.objects.create(server=server, name="greet", arguments=[{"name": "name"}])

    page = staff.get(change_url(server))
    html = page.content.decode()

    assert "fixture://hello" in html and "greet" in html
    assert 'name="resources-0-uri"' not in html and 'name="prompts-0-name"' not in html  # no inputs
    assert staff.post(change_url(server), form_data(page)).status_code == 302


def run_action(client: Client, action: str, *servers: McpServer) -> Any:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in servers]}, follow=True)


@pytest.mark.django_db
def test_enable_and_disable_actions(staff: Client, server: McpServer) -> None:
    response = run_action(staff, "disable_servers", server)

    server.refresh_from_db()
    assert server.enabled is False
    assert "1 server(s) disabled." in response.content.decode()

    run_action(staff, "enable_servers", server)
    server.refresh_from_db()
    assert server.enabled is True


@pytest.mark.django_db
def test_restart_action_bumps_the_config_version(staff: Client, server: McpServer) -> None:
    response = run_action(staff, "restart_servers", server)

    server.refresh_from_db()
    assert server.config_version == 2
    assert "Restart requested for 1 server(s)." in response.content.decode()


@pytest.mark.django_db
def test_refresh_tools_action_queues_discovery(
    staff: Client, server: McpServer, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(staff, "refresh_tools", server)

    assert "Discovery scheduled for 1 server(s)." in response.content.decode()
    assert queued_discoveries() == [str(server.pk)]


@pytest.mark.django_db
def test_check_now_reports_an_unreachable_server(staff: Client) -> None:
    closed = McpServer.objects.create(
        name="Closed",
        slug="closed",
        transport=Transport.STREAMABLE_HTTP,
        url="http://127.0.0.1:9/mcp",
        connect_timeout=2,
    )

    response = run_action(staff, "check_now", closed)

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1
    assert messages[0].startswith("closed: down:")


@pytest.mark.django_db
def test_delete_through_the_admin(staff: Client, server: McpServer) -> None:
    response = staff.post(reverse("admin:servers_mcpserver_delete", args=[server.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not McpServer.objects.exists()


@pytest.mark.django_db
def test_import_upload_creates_servers_and_shows_a_rejected_entry(staff: Client, server: McpServer) -> None:
    document = {
        "mcpServers": {
            "time": {"command": PYTHON, "args": ["-V"], "env": {"API_KEY": MASK}},
            "remote": {"type": "http", "url": "https://r.example/mcp"},
            "broken": {"url": "ftp://files.example.com/mcp"},
        }
    }
    upload = SimpleUploadedFile("mcp.json", json.dumps(document).encode(), content_type="application/json")

    response = staff.post(IMPORT, {"file": upload})

    assert response.status_code == 200
    html = response.content.decode()
    assert "1 created, 1 updated, 1 rejected" in html
    assert "broken" in html and "url: Only http:// and https:// URLs are allowed." in html
    assert McpServer.objects.get(slug="remote").transport == Transport.STREAMABLE_HTTP
    server.refresh_from_db()
    assert (server.args, server.env) == (["-V"], {"API_KEY": "sk-top-secret"})
    assert not McpServer.objects.filter(slug="broken").exists()


@pytest.mark.django_db
def test_import_upload_of_a_file_that_is_not_mcp_servers_is_a_form_error(staff: Client) -> None:
    upload = SimpleUploadedFile("mcp.json", b"{oops", content_type="application/json")

    response = staff.post(IMPORT, {"file": upload})

    assert "Not an mcpServers file" in response.context["form"].errors["file"][0]


@pytest.mark.django_db
def test_export_download_masks_secrets(staff: Client, server: McpServer) -> None:
    response = staff.get(reverse("admin:servers_mcpserver_export"))

    assert response.status_code == 200
    assert json.loads(response.content)["mcpServers"]["time"]["env"] == {"API_KEY": MASK}
    assert b"sk-top-secret" not in response.content
