"""Several instances of one upstream server behind the interface of one (`servers.upstream.interface`).

An `UpstreamPool` holds one `UpstreamSession` per instance: stdio replicas of the
same command, or one per URL of an HTTP server. Each call goes to the instance its
balancing policy picks among those in rotation (the affinity policy keys it on the
call's `affinity`). The pool's own loop takes instances out of rotation when they
fail, probes them back in, scales stdio replicas between `min_instances` and
`max_instances` on sustained load, and stops idle stdio processes. A server with
one instance behaves as a plain session.

Calls are never retried once sent (a tools/call is not idempotent): only a call
whose instance was unavailable before sending moves to another instance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import MCPError

from servers.upstream.balancing import make_policy
from servers.upstream.config import UpstreamConfig
from servers.upstream.errors import UpstreamCrashed, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from servers.upstream.interface import ProgressCallback, ResultT, Upstream
from servers.upstream.session import SessionHooks, SessionStats, UpstreamSession, describe, idle_expired
from servers.upstream.stdio import ProcessInfo
from servers.upstream.watch import ResourceWatch

logger = logging.getLogger(__name__)

T = TypeVar("T")

TICK_SECONDS = 0.25
LATENCY_ALPHA = 0.2  # EWMA weight of the newest latency
ERROR_ALPHA = 0.1  # EWMA weight of the newest success/failure


@dataclass(frozen=True)
class PoolSettings:
    """Autoscaling and probing; the hub's come from servers/conf.py (MCPHUB_POOL_*), tests pass short periods."""

    scale_up_inflight: float = 2.0  # calls in flight or waiting per instance, above which we scale up...
    scale_up_after: float = 5.0  # ...once it lasted this many seconds
    scale_down_inflight: float = 0.5  # below which an instance is idle enough to go...
    scale_down_after: float = 60.0  # ...once it lasted this many seconds
    probe_interval: float = 2.0  # seconds between pings of instances out of rotation


@dataclass(frozen=True)
class InstanceSnapshot:
    """One instance as reported by /api/status/, Prometheus and the dashboard."""

    index: int
    label: str
    state: str  # the session's: connecting | connected | backoff | stopped
    healthy: bool  # in rotation
    in_flight: int
    latency_ms: float  # EWMA of answered calls; 0 before the first
    calls: int
    errors: int
    pid: int | None  # stdio only
    restarts: int


class PoolInstance:
    """One member of a pool: its session and what balancing and health decisions need."""

    def __init__(self, index: int, label: str, session: UpstreamSession) -> None:
        self.index = index
        self.label = label
        self.session = session
        self.healthy = True
        self.leaving = False  # scaled down: finishes its calls, then goes
        self.warming = False  # scaled up: starting, not yet answered a probe
        self.probing = False
        self.in_flight = 0
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.calls = 0
        self.errors = 0

    @property
    def alive(self) -> bool:
        """Connecting or connected, with its process (stdio) still running."""
        session = self.session
        if session.state in ("backoff", "stopped"):
            return False
        # A killed process is seen here at once (stdout closed), before its supervisor's next poll.
        return not (session.config.transport == "stdio" and session.process.exited.is_set())

    @property
    def in_rotation(self) -> bool:
        return self.healthy and not self.leaving and self.session.usable and self.alive

    def has_room(self, limit: int) -> bool:
        return not limit or self.in_flight < limit

    def record(self, latency_ms: float | None) -> None:
        """One finished call: its latency, or None when it failed upstream."""
        self.calls += 1
        failed = latency_ms is None
        self.errors += failed
        self.error_rate += ERROR_ALPHA * (float(failed) - self.error_rate)
        if latency_ms is not None:
            self.latency_ms = (
                latency_ms if not self.latency_ms else self.latency_ms + LATENCY_ALPHA * (latency_ms - self.latency_ms)
            )

    def snapshot(self) -> InstanceSnapshot:
        session = self.session
        return InstanceSnapshot(
            index=self.index,
            label=self.label,
            state=session.state,
            healthy=self.in_rotation,
            in_flight=self.in_flight,
            latency_ms=round(self.latency_ms, 3),
            calls=self.calls,
            errors=self.errors,
            pid=session.process.pid if session.config.transport == "stdio" else None,
            restarts=session.stats.restarts,
        )


class UpstreamPool(Upstream):
    def __init__(
        self,
        config: UpstreamConfig,
        hooks: SessionHooks | None = None,
        settings: PoolSettings | None = None,
        watch: ResourceWatch | None = None,
    ) -> None:
        self.config = config
        self.hooks = hooks or SessionHooks()
        self.watch = watch or ResourceWatch()  # every instance reports updates of these resources
        self.settings = settings or PoolSettings()
        self.policy = make_policy(config.balancing_policy)
        self._instances: list[PoolInstance] = []
        self._task_group: TaskGroup | None = None
        self._wake = anyio.Event()
        self._freed = anyio.Event()
        self._stopping = False
        self._retiring = False
        self._finished = False
        self._last_used = time.monotonic()
        self.waiting = 0  # calls waiting for a free instance
        # Load accounting for autoscaling: the integral of (in flight + waiting) over time.
        self._load_area = 0.0
        self._load_at = time.monotonic()
        self._sample_at = self._load_at
        self._busy_since: float | None = None
        self._quiet_since: float | None = None
        count = config.min_instances if config.transport == "stdio" else len(config.urls)
        for _ in range(max(1, count)):
            self._add_instance()

    # --- members -------------------------------------------------------------------------

    def _add_instance(self) -> PoolInstance:
        taken = {instance.index for instance in self._instances}
        index = next(i for i in range(len(taken) + 1) if i not in taken)
        if self.config.transport == "stdio":
            label = f"#{index}"
            # The pool stops idle processes itself (all together), so instances never time out alone.
            config = replace(self.config.single(), idle_timeout=0)
        else:
            label = self.config.urls[index]
            config = replace(self.config.single(), url=label)
        if self.config.variant:
            label += f" ({self.config.variant})"  # told apart from the main pool's instance in rows and metrics
        instance = PoolInstance(index, label, UpstreamSession(config, self.hooks, self.watch))
        self._instances.append(instance)
        self._instances.sort(key=lambda member: member.index)
        if self._task_group is not None:
            self._task_group.start_soon(instance.session.run, name=f"upstream:{self.config.slug}{label}")
        return instance

    def _members(self) -> list[PoolInstance]:
        return [instance for instance in self._instances if not instance.leaving]

    @property
    def size(self) -> int:
        """Instances serving calls (not counting ones leaving after a scale-down)."""
        return len(self._members())

    def instances(self) -> list[InstanceSnapshot]:
        """Per-instance status, in-flight calls and latency, for the status API and metrics."""
        return [instance.snapshot() for instance in self._instances]

    def sessions(self) -> list[UpstreamSession]:
        """Every instance's session (process metrics sample each stdio process)."""
        return [instance.session for instance in self._instances]

    # --- the pool's loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Run the instances and the loop that probes, scales and stops them; ends when they all ended."""
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                for instance in self._instances:
                    task_group.start_soon(instance.session.run, name=f"upstream:{self.config.slug}{instance.label}")
                await self._supervise(task_group)
        finally:
            self._finished = True
            self._wake_waiters()

    async def _supervise(self, task_group: TaskGroup) -> None:
        next_probe = time.monotonic() + self.settings.probe_interval
        while True:
            with anyio.move_on_after(TICK_SECONDS):
                await self._wake.wait()
            self._wake = anyio.Event()
            if self._stopping or self._idle_expired():
                self._stopping = True  # not usable from now on: the manager starts a new pool on next use
                for instance in self._instances:
                    instance.session.stop()
                return
            if self._retiring:
                for instance in self._instances:
                    instance.session.retire()  # each finishes its calls in flight first
                return
            self._check_health()
            now = time.monotonic()
            if now >= next_probe:
                next_probe = now + self.settings.probe_interval
                for instance in self._instances:
                    if not instance.healthy and not instance.probing and not instance.leaving and instance.alive:
                        instance.probing = True
                        task_group.start_soon(self._probe, instance)
            if self.config.autoscaled:
                self._autoscale(now)

    def _check_health(self) -> None:
        for instance in list(self._instances):
            if instance.leaving and instance.session.state == "stopped":
                self._instances.remove(instance)
            elif instance.healthy and not instance.alive and instance.session.state != "connecting":
                self._out_of_rotation(instance, instance.session.stats.last_error or instance.session.state)

    def _out_of_rotation(self, instance: PoolInstance, reason: str) -> None:
        if instance.healthy and self.size > 1:
            logger.warning("upstream %s instance %s out of rotation: %s", self.config.slug, instance.label, reason)
        instance.healthy = False

    async def _probe(self, instance: PoolInstance) -> None:
        """Ping an instance out of rotation; a success puts it back."""
        try:
            with anyio.fail_after(self.config.connect_timeout):
                await instance.session.ping()
        except Exception as exc:
            logger.info("upstream %s instance %s probe failed: %s", self.config.slug, instance.label, describe(exc))
        else:
            if not instance.healthy and self.size > 1:
                logger.info("upstream %s instance %s in rotation", self.config.slug, instance.label)
            instance.healthy = True
            instance.warming = False
            self._wake_waiters()
        finally:
            instance.probing = False

    def _idle_expired(self) -> bool:
        # A subscribed resource keeps its server running: a stopped process reports no updates.
        return idle_expired(self.config, self._load(), self._last_used) and not self.watch.uris

    # --- autoscaling ---------------------------------------------------------------------------

    def _load(self) -> int:
        return sum(instance.in_flight for instance in self._instances) + self.waiting

    def _note_load(self) -> None:
        """Account the load up to now; called before every change of it."""
        now = time.monotonic()
        self._load_area += self._load() * (now - self._load_at)
        self._load_at = now

    def _autoscale(self, now: float) -> None:
        """One step up after sustained load, one step down after a sustained quiet, within the bounds."""
        self._note_load()
        elapsed = now - self._sample_at
        if elapsed <= 0:
            return
        average = self._load_area / elapsed  # mean calls in flight or waiting since the last tick
        self._load_area = 0.0
        self._sample_at = now
        size = self.size
        per_instance = average / size
        settings = self.settings
        # While a new instance is starting, the load per instance is not measured yet: no next step.
        warming = any(instance.warming and instance.alive for instance in self._members())
        busy = per_instance > settings.scale_up_inflight and not warming
        self._busy_since = (self._busy_since or now) if busy else None
        self._quiet_since = (self._quiet_since or now) if per_instance < settings.scale_down_inflight else None
        if self._busy_since is not None and now - self._busy_since >= settings.scale_up_after:
            if size < self.config.max_instances:
                reason = (
                    f"{per_instance:.1f} calls in flight per instance for {now - self._busy_since:.0f} s "
                    f"(above {settings.scale_up_inflight:g})"
                )
                instance = self._add_instance()
                instance.healthy, instance.warming = False, True  # in rotation once a probe got an answer
                self._scaled(size, size + 1, reason)
            self._busy_since = None
        elif self._quiet_since is not None and now - self._quiet_since >= settings.scale_down_after:
            if size > self.config.min_instances:
                leaving = max(self._members(), key=lambda instance: instance.index)
                leaving.leaving = True
                leaving.session.retire()
                reason = (
                    f"{per_instance:.1f} calls in flight per instance for {now - self._quiet_since:.0f} s "
                    f"(below {settings.scale_down_inflight:g})"
                )
                self._scaled(size, size - 1, reason)
            self._quiet_since = None

    def _scaled(self, before: int, after: int, reason: str) -> None:
        logger.info("upstream %s scaled from %d to %d instances: %s", self.config.slug, before, after, reason)
        self.hooks.on_scale(self.config.id, before, after, reason)

    # --- routing -----------------------------------------------------------------------------

    def _wake_waiters(self) -> None:
        self._freed.set()
        self._freed = anyio.Event()

    async def _acquire(self, tried: set[PoolInstance], affinity: str | None) -> PoolInstance:
        """The instance for the next call: in rotation, with room; waits (bounded) while all are full."""
        limit = self.config.instance_max_concurrent_calls
        deadline = anyio.current_time() + self.config.call_timeout
        while True:
            candidates = [instance for instance in self._members() if instance not in tried]
            # Nothing in rotation (e.g. a single instance restarting): let the sessions decide,
            # they wait for a connection in progress and fail fast during a backoff.
            rotation = [i for i in candidates if i.in_rotation] or [
                i for i in candidates if i.session.state != "stopped"
            ]
            if not rotation:
                raise UpstreamUnavailable(self.config.slug, "no instance available")
            chosen: PoolInstance | None
            if self.policy.sticky:
                chosen = self.policy.pick(rotation, affinity)
                chosen = chosen if chosen.has_room(limit) else None
            else:
                free = [instance for instance in rotation if instance.has_room(limit)]
                chosen = self.policy.pick(free, affinity) if free else None
            if chosen is not None:
                self._note_load()
                chosen.in_flight += 1
                return chosen
            freed = self._freed
            self._note_load()
            self.waiting += 1
            try:
                with anyio.move_on_at(deadline):
                    await freed.wait()
            finally:
                self._note_load()
                self.waiting -= 1
            if anyio.current_time() >= deadline:
                raise UpstreamTimeout(
                    self.config.slug, f"no free instance within {self.config.call_timeout:g} s (all busy)"
                )

    def _release(self, instance: PoolInstance) -> None:
        self._note_load()
        instance.in_flight -= 1
        self._last_used = time.monotonic()
        if self.waiting:  # a waiter took `_freed` and counted itself in one step: none can be missed
            self._wake_waiters()

    async def _dispatch(self, operation: Callable[[UpstreamSession], Awaitable[T]], affinity: str | None = None) -> T:
        """Run one request on the instance picked for `affinity`; one unavailable before sending moves on."""
        self._last_used = time.monotonic()
        tried: set[PoolInstance] = set()
        last_error: UpstreamUnavailable | None = None
        while True:
            try:
                instance = await self._acquire(tried, affinity)
            except UpstreamUnavailable as exc:
                raise (last_error or exc) from None
            started = time.perf_counter()
            try:
                result = await operation(instance.session)
            except UpstreamUnavailable as exc:
                instance.record(None)
                self._out_of_rotation(instance, str(exc))
                tried.add(instance)
                last_error = exc
                continue
            except UpstreamError as exc:
                instance.record(None)
                if isinstance(exc, UpstreamCrashed):
                    self._out_of_rotation(instance, str(exc))
                raise
            except MCPError:
                instance.record((time.perf_counter() - started) * 1000)  # answered, with an error
                raise
            else:
                instance.record((time.perf_counter() - started) * 1000)
                return result
            finally:
                self._release(instance)

    # --- the interface of an upstream (servers.upstream.interface) ---------------------------

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
        param_headers: Mapping[str, str] | None = None,
        relay: bool = False,
    ) -> types.CallToolResult:
        return await self._dispatch(
            lambda s: s.call_tool(
                name, arguments, progress_callback, timeout, param_headers=param_headers, relay=relay
            ),
            affinity,
        )

    async def request_json(
        self,
        method: str,
        params: dict[str, Any],
        param_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
    ) -> dict[str, Any]:
        return await self._dispatch(lambda s: s.request_json(method, params, param_headers, timeout), affinity)

    async def list_tools(self) -> list[types.Tool]:
        return await self._dispatch(lambda s: s.list_tools())

    async def list_resources(self) -> list[types.Resource]:
        return await self._dispatch(lambda s: s.list_resources())

    async def list_prompts(self) -> list[types.Prompt]:
        return await self._dispatch(lambda s: s.list_prompts())

    async def read_resource(self, uri: str, *, affinity: str | None = None) -> types.ReadResourceResult:
        return await self._dispatch(lambda s: s.read_resource(uri), affinity)

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None, *, affinity: str | None = None
    ) -> types.GetPromptResult:
        return await self._dispatch(lambda s: s.get_prompt(name, arguments), affinity)

    async def send(
        self, request: types.ClientRequest, result_type: type[ResultT], *, affinity: str | None = None
    ) -> ResultT:
        return await self._dispatch(lambda s: s.send(request, result_type), affinity)

    async def ping(self) -> None:
        await self._dispatch(lambda s: s.ping())

    @property
    def protocol_version(self) -> str:
        for instance in self._instances:
            if instance.session.state == "connected":
                return instance.session.protocol_version
        return self._instances[0].session.protocol_version if self._instances else self.config.protocol_version

    @property
    def server_capabilities(self) -> types.ServerCapabilities | None:
        return next((c for s in self.sessions() if (c := s.server_capabilities) is not None), None)

    @property
    def state(self) -> str:
        """The best state of any instance: connected, connecting, backoff, else stopped."""
        if self._finished:
            return "stopped"
        states = {instance.session.state for instance in self._instances}
        return next((state for state in ("connected", "connecting", "backoff") if state in states), "stopped")

    @property
    def process(self) -> ProcessInfo:
        """The first instance's process (one-instance servers; see `sessions()` for all of them)."""
        return self._instances[0].session.process if self._instances else ProcessInfo()

    @property
    def stats(self) -> SessionStats:
        """The instances' figures added up (a fresh copy: read it, do not write it)."""
        sessions = [instance.session.stats for instance in self._instances]
        connected = [stats.connected_since for stats in sessions if stats.connected_since is not None]
        return SessionStats(
            restarts=sum(stats.restarts for stats in sessions),
            connected_since=min(connected) if connected else None,
            last_used=self._last_used,
            last_error=next((stats.last_error for stats in sessions if stats.last_error), ""),
            in_flight=self._load(),
        )

    @property
    def usable(self) -> bool:
        return not (self._finished or self._stopping or self._retiring)

    @property
    def refused(self) -> bool:
        """A variant whose server refused its era (servers.upstream.eras)."""
        return any(instance.session.refused for instance in self._instances)

    def stop(self) -> None:
        """Stop now (hub shutdown); in-flight calls fail."""
        self._stopping = True
        for instance in self._instances:
            instance.session.stop()
        self._wake.set()

    def retire(self) -> None:
        """Stop once the calls in flight are done (configuration changed: a new pool takes over)."""
        self._retiring = True
        self._wake.set()
