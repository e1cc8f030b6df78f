"""stdio transport: one child process, spawned without a shell, speaking JSON-RPC lines.

Our own transport rather than the SDK's `stdio_client`, because the hub needs
what that one hides: the child's pid (process metrics, orphan cleanup), its
stderr (shown in the admin), lines on stdout that are not JSON-RPC (reported
and skipped instead of logged as tracebacks), and the moment it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from servers.upstream.config import UpstreamConfig

# Grace periods of the MCP shutdown sequence: close stdin, then SIGTERM, then SIGKILL.
EXIT_GRACE_SECONDS = 2.0
TERM_GRACE_SECONDS = 2.0

# Process groups of live children: killed at interpreter exit so no child outlives the hub.
_live_groups: set[int] = set()


def _kill_live_groups() -> None:
    for pgid in list(_live_groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _live_groups.clear()


atexit.register(_kill_live_groups)


class ProcessInfo:
    """What the supervisor learns about the child (read by metrics and the admin)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.exited = anyio.Event()


@asynccontextmanager
async def stdio_transport(
    config: UpstreamConfig,
    info: ProcessInfo,
    on_stderr: Callable[[list[str]], None],
) -> AsyncIterator[tuple[anyio.abc.ObjectReceiveStream, anyio.abc.ObjectSendStream]]:
    process: Process = await anyio.open_process(
        [config.command, *config.args],
        env=get_default_environment() | config.env,
        cwd=config.cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Its own process group, so that the whole tree (npx → node, uvx → python) is stopped together.
        start_new_session=True,
    )
    info.pid = process.pid
    _live_groups.add(process.pid)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump_stdout() -> None:
        assert process.stdout is not None
        buffer = ""
        try:
            async with read_writer:
                async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                    *lines, buffer = (buffer + chunk).split("\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        except ValueError:
                            # A server that prints to stdout would corrupt the stream: skip the line, say so.
                            await anyio.to_thread.run_sync(on_stderr, [f"[stdout, not JSON-RPC] {line[:500]}"])
                            continue
                        await read_writer.send(SessionMessage(message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            info.exited.set()

    async def pump_stderr() -> None:
        assert process.stderr is not None
        buffer = ""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            async for chunk in TextReceiveStream(process.stderr, errors="replace"):
                *lines, buffer = (buffer + chunk).split("\n")
                if lines:
                    await anyio.to_thread.run_sync(on_stderr, lines)
        if buffer:
            await anyio.to_thread.run_sync(on_stderr, [buffer])

    async def pump_stdin() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for session_message in write_reader:
                    data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The child is gone: end the read side so pending requests fail instead of hanging.
            await read_writer.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_stdout)
        tg.start_soon(pump_stderr)
        tg.start_soon(pump_stdin)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _stop_process(process)
                info.returncode = process.returncode
                _live_groups.discard(process.pid)
            tg.cancel_scope.cancel()


async def _stop_process(process: Process) -> None:
    """Close stdin, wait; SIGTERM the group, wait; SIGKILL the group."""
    assert process.stdin is not None
    with contextlib.suppress(Exception):
        await process.stdin.aclose()
    if await _exited_within(process, EXIT_GRACE_SECONDS):
        _signal_group(process.pid, signal.SIGKILL)  # grandchildren it may have left behind
        return
    _signal_group(process.pid, signal.SIGTERM)
    if not await _exited_within(process, TERM_GRACE_SECONDS):
        _signal_group(process.pid, signal.SIGKILL)
        await _exited_within(process, TERM_GRACE_SECONDS)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _exited_within(process: Process, seconds: float) -> bool:
    # Polling returncode, not process.wait(): wait() also waits for pipe EOF,
    # which a grandchild holding the pipe would delay.
    with anyio.move_on_after(seconds):
        while process.returncode is None:
            await anyio.sleep(0.02)
    return process.returncode is not None
