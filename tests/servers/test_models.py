"""McpServer validation (errors name the field), tool allow/deny lists, secrets encrypted at rest."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from servers.models import McpServer, Transport
from tests.servers.unusable_values import UNUSABLE, UNUSABLE_IDS

PYTHON = sys.executable


def stdio(**fields: object) -> McpServer:
    values: dict[str, object] = {"name": "Time", "slug": "time", "transport": Transport.STDIO, "command": PYTHON}
    values.update(fields)
    return McpServer(**values)


def http(**fields: object) -> McpServer:
    values: dict[str, object] = {
        "name": "Remote",
        "slug": "remote",
        "transport": Transport.STREAMABLE_HTTP,
        "url": "https://mcp.example.com/mcp",
    }
    values.update(fields)
    return McpServer(**values)


def errors_of(server: McpServer) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        server.full_clean()
    return caught.value.message_dict


@pytest.mark.django_db
def test_valid_servers_pass_full_clean() -> None:
    stdio(args=["-m", "mcp_server_time"], env={"TZ": "UTC"}, tags=["team-a"]).full_clean()
    http(headers={"Authorization": "Bearer x"}).full_clean()
    http(transport=Transport.SSE, url="http://127.0.0.1:9/sse").full_clean()


@pytest.mark.django_db
def test_command_not_found_names_the_command_field() -> None:
    errors = errors_of(stdio(command="no-such-program-mcphub"))

    assert list(errors) == ["command"]
    assert "no-such-program-mcphub" in errors["command"][0]


@pytest.mark.django_db
def test_command_not_executable_names_the_command_field(tmp_path: Path) -> None:
    script = tmp_path / "server.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)

    assert list(errors_of(stdio(command=str(script)))) == ["command"]

    script.chmod(stat.S_IRWXU)
    stdio(command=str(script)).full_clean()


@pytest.mark.django_db
def test_stdio_server_needs_a_command() -> None:
    assert list(errors_of(stdio(command=""))) == ["command"]


@pytest.mark.django_db
def test_relative_command_found_on_path_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "my-mcp-server"
    program.write_text("#!/bin/sh\n")
    program.chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    stdio(command="my-mcp-server").full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["args", "tags", "tool_allowlist", "tool_denylist"])
@pytest.mark.parametrize("value", ["--port 1", ["--port", 1], {"a": "b"}])
def test_lists_must_be_lists_of_strings(field: str, value: object) -> None:
    errors = errors_of(stdio(**{field: value}))

    assert errors[field] == ["Must be a JSON list of strings."]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["env", "headers"])
def test_secret_mappings_must_map_to_strings(field: str) -> None:
    assert field in errors_of(stdio(**{field: {"PORT": 1}}))


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["ftp://example.com/mcp", "file:///etc/passwd", "example.com/mcp"])
def test_url_must_be_http_or_https(url: str) -> None:
    assert list(errors_of(http(url=url))) == ["url"]


@pytest.mark.django_db
def test_http_server_needs_a_url() -> None:
    assert list(errors_of(http(url=""))) == ["url"]


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["Time", "time_server", "time server", "tïme"])
def test_slug_must_be_lowercase_letters_digits_hyphens(slug: str) -> None:
    assert list(errors_of(stdio(slug=slug))) == ["slug"]


@pytest.mark.django_db
def test_slug_at_most_30_characters() -> None:
    stdio(slug="a" * 30).full_clean()

    assert list(errors_of(stdio(slug="a" * 31))) == ["slug"]


@pytest.mark.django_db
def test_slug_must_be_unique() -> None:
    stdio().save()

    errors = errors_of(stdio(name="Other"))

    assert list(errors) == ["slug"]
    assert "already exists" in errors["slug"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["connect_timeout", "call_timeout"])
@pytest.mark.parametrize("value", [0, -1.5])
def test_timeouts_must_be_positive(field: str, value: float) -> None:
    assert list(errors_of(stdio(**{field: value}))) == [field]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), UNUSABLE, ids=UNUSABLE_IDS)
def test_values_the_hub_cannot_use_are_errors_on_their_field(field: str, value: object) -> None:
    assert list(errors_of(stdio(**{field: value}))) == [field]


@pytest.mark.django_db
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_timeouts_must_be_finite(value: float) -> None:
    # A JSON import can carry NaN and Infinity, which every min/max comparison lets through.
    errors = errors_of(stdio(call_timeout=value))

    assert list(errors) == ["call_timeout"]
    assert "Must be a finite number." in errors["call_timeout"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "low", "high", "step"),
    [
        ("connect_timeout", 0.1, 300, 0.01),
        ("call_timeout", 0.1, 3600, 0.01),
        ("health_check_interval", 1, 86400, 1),
        ("idle_timeout", 0, 604800, 1),
        ("max_concurrent_calls", 1, 1000, 1),
        ("instance_max_concurrent_calls", 0, 1000, 1),
    ],
)
def test_numbers_are_bounded(field: str, low: float, high: float, step: float) -> None:
    # The bounds the README states.
    stdio(**{field: low}).full_clean()
    stdio(**{field: high}).full_clean()

    assert list(errors_of(stdio(**{field: low - step}))) == [field]
    assert list(errors_of(stdio(**{field: high + step}))) == [field]


@pytest.mark.django_db
def test_usual_env_and_header_names_and_values_are_accepted() -> None:
    stdio(
        env={"_A1": "x", "lower_case": "=;$ ok"},
        headers={"X-Api-Key": "a\tb", "Authorization": "Bearer t~!#"},
    ).full_clean()


@pytest.mark.django_db
def test_env_and_header_errors_name_the_bad_name_not_the_value() -> None:
    errors = errors_of(stdio(env={"A=B": "sk-secret", "OK": "x"}, headers={"X-A": "sk-secret\n"}))

    assert errors["env"] == ["'A=B' is not a variable name: letters, digits and _, not starting with a digit."]
    assert errors["headers"] == ["The value of X-A contains a control character (CR, LF, NUL...)."]
    assert "sk-secret" not in str(errors)


def test_tool_visible_with_allow_and_deny_globs() -> None:
    everything = McpServer()
    allow = McpServer(tool_allowlist=["get_*", "echo"])
    deny_wins = McpServer(tool_allowlist=["get_*"], tool_denylist=["get_secret*"])

    assert everything.tool_visible("anything")
    assert allow.tool_visible("get_time")
    assert allow.tool_visible("echo")
    assert not allow.tool_visible("set_time")
    assert not allow.tool_visible("echo2")
    assert deny_wins.tool_visible("get_time")
    assert not deny_wins.tool_visible("get_secret_key")
    assert not McpServer(tool_denylist=["*"]).tool_visible("echo")


def test_filter_version_changes_with_the_lists() -> None:
    assert McpServer(tool_allowlist=["a*"]).filter_version != McpServer(tool_allowlist=["b*"]).filter_version
    assert McpServer().filter_version == McpServer().filter_version


@pytest.mark.django_db
def test_secrets_are_encrypted_at_rest_and_decrypted_on_read() -> None:
    server = stdio(env={"API_KEY": "sk-live-plaintext-123"})
    server.save()
    remote = http(headers={"Authorization": "Bearer header-secret-456"})
    remote.save()

    with connection.cursor() as cursor:
        cursor.execute("SELECT env::text, headers::text FROM servers_mcpserver WHERE id = %s", [server.pk])
        raw_env, _ = cursor.fetchone()
        cursor.execute("SELECT headers::text FROM servers_mcpserver WHERE id = %s", [remote.pk])
        (raw_headers,) = cursor.fetchone()

    for raw, secret in ((raw_env, "sk-live-plaintext-123"), (raw_headers, "header-secret-456")):
        assert secret not in raw
        assert "API_KEY" not in raw and "Authorization" not in raw  # names are encrypted too
        assert raw.startswith("gAAAAA")  # a Fernet token
    assert McpServer.objects.get(pk=server.pk).env == {"API_KEY": "sk-live-plaintext-123"}
    assert McpServer.objects.get(pk=remote.pk).headers == {"Authorization": "Bearer header-secret-456"}
