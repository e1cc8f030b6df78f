"""import_servers / export_servers: the mcpServers JSON of Claude Desktop, Cursor and VS Code."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from servers.models import McpServer, Transport
from servers.secrets import MASK
from tests.servers.unusable_values import UNUSABLE

PYTHON = sys.executable


def write(tmp_path: Path, servers: dict[str, object], name: str = "mcp.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def run_import(path: Path | str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_servers", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_export(*args: str) -> dict:
    out = io.StringIO()
    call_command("export_servers", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_one_bad_entry_is_rejected_with_its_reason_and_the_good_ones_are_created(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "time": {"command": PYTHON, "args": ["-m", "mcp_server_time"], "env": {"TZ": "UTC"}},
            "broken": {"command": "no-such-program-mcphub", "args": []},
            "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer t"}},
        },
    )

    out, err = run_import(path)

    assert set(McpServer.objects.values_list("slug", flat=True)) == {"time", "remote"}
    assert "created: time" in out and "created: remote" in out
    assert "2 created, 0 updated, 1 rejected" in out
    assert "rejected: broken: command:" in err
    assert "no-such-program-mcphub" in err
    time = McpServer.objects.get(slug="time")
    assert (time.name, time.transport, time.args, time.env) == (
        "time",
        "stdio",
        ["-m", "mcp_server_time"],
        {"TZ": "UTC"},
    )
    remote = McpServer.objects.get(slug="remote")
    assert (remote.transport, remote.headers) == (Transport.STREAMABLE_HTTP, {"Authorization": "Bearer t"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"command": PYTHON, "args": "-m mcp_server_time"}, "args:"),
        ({"url": "ftp://example.com/mcp"}, "url:"),
        ({"type": "websocket", "url": "wss://example.com"}, "type:"),
        ({"command": PYTHON, "env": {"PORT": 8080}}, "env:"),
        ({"command": PYTHON, "env": ["A=B"]}, "env:"),
        ({"command": PYTHON, "call_timeout": 0}, "call_timeout:"),
        ({"description": "no command nor url"}, "command:"),
        ("not an object", "entry:"),
    ],
)
def test_rejection_reasons_name_the_field(tmp_path: Path, entry: object, field: str) -> None:
    _, err = run_import(write(tmp_path, {"bad": entry}))

    assert err.startswith(f"rejected: bad: {field}")
    assert not McpServer.objects.exists()


@pytest.mark.django_db
def test_values_the_hub_cannot_use_are_rejected_by_field_and_the_good_entries_kept(tmp_path: Path) -> None:
    entries: dict[str, object] = {
        f"bad-{i}": {"command": PYTHON, field: value} for i, (field, value) in enumerate(UNUSABLE)
    }
    entries["good"] = {"command": PYTHON, "call_timeout": 30, "env": {"TZ": "UTC"}}

    out, err = run_import(write(tmp_path, entries))

    assert list(McpServer.objects.values_list("slug", flat=True)) == ["good"]
    assert f"1 created, 0 updated, {len(UNUSABLE)} rejected" in out
    rejected = err.splitlines()
    assert len(rejected) == len(UNUSABLE)
    for i, (field, _value) in enumerate(UNUSABLE):
        assert f"rejected: bad-{i}: {field}: " in rejected[i]


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999"])
def test_non_finite_numbers_in_a_file_are_rejected(tmp_path: Path, number: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(f'{{"mcpServers": {{"bad": {{"command": "{PYTHON}", "connect_timeout": {number}}}}}}}')

    _, err = run_import(path)

    assert err.startswith("rejected: bad: connect_timeout: Must be a finite number.")
    assert not McpServer.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "reason"),
    [("!!!", "slug: cannot make a slug"), ("a-very-long-server-name-over-thirty-chars", "longer than 30")],
)
def test_keys_that_cannot_become_a_slug_are_rejected(tmp_path: Path, key: str, reason: str) -> None:
    _, err = run_import(write(tmp_path, {key: {"command": PYTHON}}))

    assert reason in err
    assert not McpServer.objects.exists()


@pytest.mark.django_db
def test_keys_are_slugified_and_kept_as_the_name(tmp_path: Path) -> None:
    run_import(write(tmp_path, {"My Time_Server": {"command": PYTHON}, "my-time-server": {"command": PYTHON}}))

    server = McpServer.objects.get()
    assert (server.slug, server.name) == ("my-time-server", "My Time_Server")


@pytest.mark.django_db
def test_reimport_updates_instead_of_duplicating(tmp_path: Path) -> None:
    run_import(
        write(tmp_path, {"time": {"command": PYTHON, "args": ["-V"], "description": "clock", "call_timeout": 5}})
    )
    server = McpServer.objects.get(slug="time")

    out, _ = run_import(write(tmp_path, {"time": {"command": PYTHON, "args": ["-m", "mcp_server_time"]}}))

    assert "updated: time" in out and "0 created, 1 updated, 0 rejected" in out
    server.refresh_from_db()
    assert McpServer.objects.count() == 1
    assert server.args == ["-m", "mcp_server_time"]
    assert server.config_version == 2  # a connection field changed: live sessions reconnect
    assert (server.description, server.call_timeout) == ("clock", 5)  # hub keys absent: kept


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "transport"),
    [
        ({"type": "http", "url": "https://a.example/mcp"}, Transport.STREAMABLE_HTTP),  # VS Code
        ({"type": "streamable-http", "url": "https://a.example/mcp"}, Transport.STREAMABLE_HTTP),
        ({"type": "streamableHttp", "url": "https://a.example/mcp"}, Transport.STREAMABLE_HTTP),  # Cursor
        ({"type": "sse", "url": "https://a.example/sse"}, Transport.SSE),
        ({"url": "https://a.example/mcp"}, Transport.STREAMABLE_HTTP),  # url without type
        ({"type": "stdio", "command": PYTHON, "args": ["-V"]}, Transport.STDIO),  # VS Code stdio
    ],
)
def test_vscode_and_cursor_entries_with_type(tmp_path: Path, entry: dict, transport: str) -> None:
    run_import(write(tmp_path, {"srv": {**entry, "unknownKey": {"ignored": True}}}))

    assert McpServer.objects.get(slug="srv").transport == transport


@pytest.mark.django_db
def test_hub_keys_are_imported(tmp_path: Path) -> None:
    entry = {"command": PYTHON, "description": "d", "enabled": False, "tags": ["a"], "connect_timeout": 3}
    run_import(write(tmp_path, {"srv": entry, "cline": {"command": PYTHON, "disabled": True}}))

    server = McpServer.objects.get(slug="srv")
    assert (server.description, server.enabled, server.tags, server.connect_timeout) == ("d", False, ["a"], 3)
    assert McpServer.objects.get(slug="cline").enabled is False


@pytest.mark.django_db
def test_export_masks_secrets_unless_show_secrets() -> None:
    McpServer.objects.create(name="T", slug="time", command=PYTHON, args=["-V"], env={"TOKEN": "s3cret"}, cwd="/tmp")
    McpServer.objects.create(
        name="R", slug="remote", transport=Transport.SSE, url="https://r.example/sse", headers={"X-Key": "h3ader"}
    )

    masked = run_export()
    clear = run_export("--show-secrets")

    assert masked == {
        "mcpServers": {
            "remote": {"type": "sse", "url": "https://r.example/sse", "headers": {"X-Key": MASK}},
            "time": {"command": PYTHON, "args": ["-V"], "env": {"TOKEN": MASK}, "cwd": "/tmp"},
        }
    }
    assert clear["mcpServers"]["time"]["env"] == {"TOKEN": "s3cret"}
    assert clear["mcpServers"]["remote"]["headers"] == {"X-Key": "h3ader"}


@pytest.mark.django_db
def test_export_to_a_file_is_owner_only(tmp_path: Path) -> None:
    McpServer.objects.create(name="T", slug="time", command=PYTHON, env={"TOKEN": "s3cret"})
    target = tmp_path / "out.json"

    call_command("export_servers", "--show-secrets", "--output", str(target), stdout=io.StringIO())

    assert json.loads(target.read_text())["mcpServers"]["time"]["env"] == {"TOKEN": "s3cret"}
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_export_then_import_round_trip_keeps_secrets(tmp_path: Path) -> None:
    McpServer.objects.create(name="Time", slug="time", command=PYTHON, env={"TOKEN": "s3cret", "TZ": "UTC"})
    McpServer.objects.create(
        name="R", slug="remote", transport=Transport.STREAMABLE_HTTP, url="https://r.example/mcp", headers={"A": "b"}
    )
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(run_export()))
    assert "s3cret" not in exported.read_text()

    out, err = run_import(exported)

    assert "0 created, 2 updated, 0 rejected" in out and err == ""
    assert McpServer.objects.get(slug="time").env == {"TOKEN": "s3cret", "TZ": "UTC"}
    assert McpServer.objects.get(slug="remote").headers == {"A": "b"}
    assert McpServer.objects.get(slug="time").config_version == 1  # nothing changed: no reconnect
    assert McpServer.objects.get(slug="time").name == "Time"  # the hub's name survives the round trip


@pytest.mark.django_db
def test_a_mask_with_no_stored_value_is_rejected(tmp_path: Path) -> None:
    _, err = run_import(write(tmp_path, {"time": {"command": PYTHON, "env": {"TOKEN": MASK}}}))

    assert err.startswith("rejected: time: env: TOKEN:")
    assert not McpServer.objects.exists()


@pytest.mark.django_db
def test_hub_fields_export_round_trips_into_an_empty_hub(tmp_path: Path) -> None:
    McpServer.objects.create(name="Time", slug="time", command=PYTHON, tags=["x"], enabled=False, call_timeout=7)
    document = run_export("--hub-fields", "--show-secrets")
    McpServer.objects.all().delete()

    run_import(write(tmp_path, document["mcpServers"]))

    server = McpServer.objects.get(slug="time")
    assert (server.name, server.tags, server.enabled, server.call_timeout) == ("Time", ["x"], False, 7)


@pytest.mark.django_db
def test_import_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.dumps({"mcpServers": {"time": {"command": PYTHON}}}).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    out, _ = run_import("-")

    assert "created: time" in out
    assert McpServer.objects.filter(slug="time").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("content", ["{not json", '{"servers": {}}', '{"mcpServers": []}', "[]"])
def test_unusable_file_is_a_command_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(CommandError):
        run_import(path)


@pytest.mark.django_db
def test_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run_import(tmp_path / "missing.json")
