"""Settings come from the environment; Redis roles get separate databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
from django.conf import settings

from mcphub.settings import redis_db_url
from tests.conftest import BASE_DIR, embedded_env


def test_redis_roles_use_separate_databases() -> None:
    urls = {settings.CELERY_BROKER_URL, settings.CACHES["default"]["LOCATION"]}
    urls |= {host["address"] for host in settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]}

    assert len(urls) == 3


def test_redis_db_numbers_are_offsets_of_the_base_url() -> None:
    assert redis_db_url("redis://127.0.0.1:6379", 0) == "redis://127.0.0.1:6379/0"
    assert redis_db_url("redis://127.0.0.1:6379", 2) == "redis://127.0.0.1:6379/2"
    assert redis_db_url("redis://:pw@host:1/10", 1) == "redis://:pw@host:1/11"


def test_database_is_postgresql() -> None:
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def _settings_in_subprocess(env: dict[str, str], expression: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def test_secret_key_is_generated_once_and_kept(tmp_path) -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="mcphub.settings", MCPHUB_VAR_DIR=str(tmp_path))
    env.pop("SECRET_KEY", None)
    # Any URLs do: settings only read them.
    env.update(DATABASE_URL="postgresql://postgres@127.0.0.1:1/unused", REDIS_URL=settings.REDIS_URL)

    first = _settings_in_subprocess(env, "settings.SECRET_KEY")
    second = _settings_in_subprocess(env, "settings.SECRET_KEY")

    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert _settings_in_subprocess(dict(env, SECRET_KEY="from-env"), "settings.SECRET_KEY") == "from-env"


def test_debug_and_allowed_hosts_from_environment(tmp_path) -> None:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="mcphub.settings",
        MCPHUB_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/unused",
        REDIS_URL=settings.REDIS_URL,
        DEBUG="true",
        ALLOWED_HOSTS="hub.example.com, other.example.com",
    )

    assert _settings_in_subprocess(env, "settings.DEBUG") == "True"
    assert _settings_in_subprocess(env, "settings.ALLOWED_HOSTS") == "['hub.example.com', 'other.example.com']"


def test_the_fast_path_switch_from_environment(tmp_path) -> None:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="mcphub.settings",
        MCPHUB_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/unused",
        REDIS_URL=settings.REDIS_URL,
    )
    env.pop("MCPHUB_FAST_PATH", None)
    fast_path = "__import__('servers.conf').conf.servers_conf().fast_path"

    assert _settings_in_subprocess(env, fast_path) == "True"  # on unless turned off
    assert [_settings_in_subprocess(dict(env, MCPHUB_FAST_PATH=value), fast_path) for value in ("0", "false")] == [
        "False",
        "False",
    ]
    assert _settings_in_subprocess(dict(env, MCPHUB_FAST_PATH="1"), fast_path) == "True"


def test_importing_settings_starts_no_server(embedded_var_dir) -> None:
    """Without DATABASE_URL / REDIS_URL, settings compute the embedded servers' addresses; only entry points
    (launcher, manage.py, the ASGI module, the test session) start them."""
    env = embedded_env(embedded_var_dir, DJANGO_SETTINGS_MODULE="mcphub.settings", SECRET_KEY="from-env")

    urls = _settings_in_subprocess(env, "settings.DATABASE_URL, settings.REDIS_URL")

    assert not _processes_in(embedded_var_dir)  # PostgreSQL and Redis run in their data folders
    assert set(os.listdir(embedded_var_dir)) <= {"static"}  # no data folder, no lock, no pid file
    assert f"host={embedded_var_dir / 'pg'}" in urls
    assert "redis://127.0.0.1:" in urls


def _processes_in(folder: Path) -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cwd"])
        if process.info["cwd"] and Path(process.info["cwd"]).is_relative_to(folder)
    ]
