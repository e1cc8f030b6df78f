"""Supervised stdio upstreams against real processes: our SDK fixture, mcp-server-time, server-everything."""

from __future__ import annotations

import subprocess
import sys
import time

import anyio
import psutil
import pytest

from servers.upstream.errors import UpstreamCrashed, UpstreamTimeout, UpstreamUnavailable
from servers.upstream.manager import upstream_manager
from servers.upstream.session import SessionHooks
from tests.conftest import BASE_DIR, EVERYTHING, MCP_SERVER_TIME, stdio_config

pytestmark = pytest.mark.anyio


async def _wait_until(condition, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def _alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


async def test_call_tool_and_list_tools() -> None:
    async with upstream_manager() as manager:
        upstream = manager.pool(stdio_config())

        result = await upstream.call_tool("add", {"a": 2, "b": 3})
        tools = await upstream.list_tools()

    assert result.is_error is not True
    assert result.content[0].text == "5"
    assert {"echo", "add", "slow", "crash", "big"} <= {tool.name for tool in tools}


async def test_tool_error_is_a_result_not_an_exception() -> None:
    async with upstream_manager() as manager:
        result = await manager.pool(stdio_config()).call_tool("fail", {})

    assert result.is_error is True


async def test_crash_gives_an_error_then_the_process_is_restarted() -> None:
    restarts: list[str] = []
    async with upstream_manager(SessionHooks(on_restart=lambda _id, reason: restarts.append(reason))) as manager:
        upstream = manager.pool(stdio_config())
        await upstream.call_tool("echo", {"text": "before"})
        first_pid = upstream.process.pid

        with pytest.raises(UpstreamCrashed, match="fixture"):
            await upstream.call_tool("crash", {})
        await _wait_until(lambda: upstream.state == "connected" and upstream.process.pid != first_pid)
        result = await upstream.call_tool("echo", {"text": "after"})

    assert result.content[0].text == "after"
    assert upstream.stats.restarts >= 1
    assert restarts
    assert not _alive(first_pid)


async def test_silent_server_gives_a_timeout_error_never_a_hang() -> None:
    started = time.monotonic()
    async with upstream_manager() as manager:
        upstream = manager.pool(stdio_config("--silent", connect_timeout=2.0))
        with pytest.raises(UpstreamUnavailable, match="no connection within 2 s"):
            await upstream.call_tool("echo", {"text": "x"})
        # In backoff now: the next call fails fast instead of waiting again.
        fast = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await upstream.call_tool("echo", {"text": "x"})
        assert time.monotonic() - fast < 1.5

    assert time.monotonic() - started < 60


async def test_slow_call_times_out_with_the_limit_named() -> None:
    async with upstream_manager() as manager:
        upstream = manager.pool(stdio_config())
        with pytest.raises(UpstreamTimeout, match="no answer within 1 s"):
            await upstream.call_tool("slow", {"seconds": 30}, timeout=1)
        # The connection survives a timed-out call.
        result = await upstream.call_tool("echo", {"text": "still here"})

    assert result.content[0].text == "still here"


async def test_junk_on_stdout_is_skipped_and_reported() -> None:
    lines: list[str] = []
    async with upstream_manager(SessionHooks(on_stderr=lambda _id, new: lines.extend(new))) as manager:
        result = await manager.pool(stdio_config("--junk-stdout")).call_tool("echo", {"text": "ok"})

    assert result.content[0].text == "ok"
    assert any(line.startswith("[stdout, not JSON-RPC] junk line") for line in lines)


async def test_stderr_lines_reach_the_hook() -> None:
    lines: list[str] = []
    async with upstream_manager(SessionHooks(on_stderr=lambda _id, new: lines.extend(new))) as manager:
        # server-everything announces itself on stderr.
        upstream = manager.pool(stdio_config(command=str(EVERYTHING), args=("stdio",)))
        await upstream.call_tool("echo", {"message": "hi"})
        await _wait_until(lambda: any("STDIO" in line for line in lines))


async def test_idle_process_is_stopped_and_restarted_on_next_use() -> None:
    async with upstream_manager() as manager:
        config = stdio_config(idle_timeout=1)
        upstream = manager.pool(config)
        await upstream.call_tool("echo", {"text": "x"})
        pid = upstream.process.pid

        await _wait_until(lambda: upstream.state == "stopped", timeout=30)
        assert not _alive(pid)

        again = manager.pool(config)
        result = await again.call_tool("echo", {"text": "back"})

    assert again is not upstream
    assert result.content[0].text == "back"


async def test_config_change_replaces_the_session() -> None:
    async with upstream_manager() as manager:
        old = manager.pool(stdio_config())
        await old.call_tool("echo", {"text": "x"})
        old_pid = old.process.pid

        new = manager.pool(stdio_config(config_version=2))
        await new.call_tool("echo", {"text": "y"})
        await _wait_until(lambda: old.state == "stopped")

    assert new.process.pid != old_pid
    assert not _alive(old_pid)


async def test_five_megabyte_result_passes() -> None:
    async with upstream_manager() as manager:
        result = await manager.pool(stdio_config()).call_tool("big", {"size_bytes": 5_000_000})

    assert len(result.content[0].text) == 5_000_000


async def test_no_child_left_after_the_manager_stops() -> None:
    async with upstream_manager() as manager:
        upstreams = [manager.pool(stdio_config(id=i, slug=f"s{i}")) for i in range(3)]
        for upstream in upstreams:
            await upstream.call_tool("echo", {"text": "x"})
        pids = [upstream.process.pid for upstream in upstreams]
        assert all(_alive(pid) for pid in pids)

    assert not any(_alive(pid) for pid in pids)


def test_no_child_left_when_the_hub_process_exits_without_cleanup(tmp_path) -> None:
    # A process that exits while a session is live (no manager shutdown): atexit kills the children.
    script = tmp_path / "hub.py"
    script.write_text(
        "import anyio, os, sys\n"
        f"sys.path.insert(0, {str(BASE_DIR)!r})\n"
        "from servers.upstream.manager import upstream_manager\n"
        "from tests.conftest import stdio_config\n"
        "async def main():\n"
        "    async with upstream_manager() as m:\n"
        "        s = m.pool(stdio_config())\n"
        "        await s.call_tool('echo', {'text': 'x'})\n"
        "        print(s.process.pid, flush=True)\n"
        "        sys.exit(0)\n"
        "anyio.run(main)\n"
    )
    env = {"DJANGO_SETTINGS_MODULE": "mcphub.settings", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=BASE_DIR
    )
    pid = int(result.stdout.split()[0])

    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


@pytest.mark.parametrize(
    ("server", "expected_era"),
    [
        (stdio_config(), "stateless"),
        (stdio_config("--legacy-only"), "handshake"),
        (stdio_config(command=str(MCP_SERVER_TIME), args=()), "stateless"),
        (stdio_config(command=str(EVERYTHING), args=("stdio",)), "handshake"),
    ],
    ids=["fixture", "fixture-legacy-only", "mcp-server-time", "server-everything"],
)
async def test_era_is_detected_and_reported(server, expected_era: str) -> None:
    eras: list[tuple[str, str]] = []
    async with upstream_manager(SessionHooks(on_era=lambda _id, era, version: eras.append((era, version)))) as manager:
        upstream = manager.pool(server)
        tools = await upstream.list_tools()

    assert tools
    assert eras and eras[0][0] == expected_era


async def test_remembered_handshake_era_skips_the_probe() -> None:
    # The fixture's whoami reports the protocol version each call arrived with.
    async with upstream_manager() as manager:
        upstream = manager.pool(stdio_config(era="handshake"))
        result = await upstream.call_tool("whoami", {})

    assert "2025-11-25" in result.content[0].text


async def test_real_time_server_answers() -> None:
    async with upstream_manager() as manager:
        upstream = manager.pool(stdio_config(command=str(MCP_SERVER_TIME), args=()))
        result = await upstream.call_tool("get_current_time", {"timezone": "UTC"})

    assert '"timezone": "UTC"' in result.content[0].text or "UTC" in result.content[0].text
