"""The servers settings: defaults written once in servers/conf.py (the pool's in PoolSettings); a setting overrides."""

from __future__ import annotations

import pytest

from servers.conf import ServersConf, servers_conf
from servers.upstream.pool import PoolSettings


def test_defaults() -> None:
    assert ServersConf.from_settings() == ServersConf(
        tool_separator="__",
        max_request_bytes=4 * 1024 * 1024,
        max_queued_calls=64,
        max_held_calls=16,
        sse_keepalive_seconds=15.0,
        allowed_origins=(),
        tools_cache_ttl=300,
        relist_min_interval=5.0,
        breaker_cooldown=30.0,
        fast_path=True,
        pool=PoolSettings(),
    )


def test_an_override_is_read_once(settings) -> None:
    settings.MCPHUB_MAX_QUEUED_CALLS = "7"  # a string, as from the environment
    settings.MONITORING_BREAKER_COOLDOWN = "0.5"  # the breaker's, under the name documented with health checks
    settings.MCPHUB_POOL_PROBE_INTERVAL = "0.25"

    conf = servers_conf()

    assert (conf.max_queued_calls, conf.breaker_cooldown) == (7, 0.5)
    assert conf.pool == PoolSettings(probe_interval=0.25)
    assert servers_conf() is conf


def test_a_separator_that_could_be_part_of_a_slug_is_refused(settings) -> None:
    settings.MCPHUB_TOOL_SEPARATOR = "-"

    with pytest.raises(ValueError, match="MCPHUB_TOOL_SEPARATOR"):
        servers_conf()
