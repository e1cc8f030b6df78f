"""`make run` end to end: embedded servers, admin login, web + worker + beat, clean stop, fast restart."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

import psutil
import pytest
from celery import Celery

from tests.conftest import BASE_DIR, embedded_env, free_port, http_get, wait_for

pytestmark = pytest.mark.slow

Popen = subprocess.Popen[str]


def _start_launcher(var_dir: Path, port: int, output: IO[str] | int = subprocess.PIPE, **extra_env: str) -> Popen:
    env = embedded_env(var_dir, PORT=str(port), **extra_env)
    # A session of its own, like a terminal: Ctrl-C reaches the whole group.
    return subprocess.Popen(
        [sys.executable, "-m", "mcphub.launcher"],
        cwd=BASE_DIR,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _admin_login(base_url: str, password: str) -> str:
    """Log in through the real admin login form; return the admin index page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base_url + "/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(base_url + "/admin/login/", data=form, headers={"Referer": base_url})
    return opener.open(request, timeout=10).read().decode()


def _stop(process: Popen, how: str) -> str:
    if how == "sigint-group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=90)
    return output


def _survivors(pids: list[int]) -> list[str]:
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(process.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _assert_all_gone(pids: list[int]) -> None:
    try:
        wait_for(lambda: not _survivors(pids), timeout=90, what="hub processes to exit")
    except AssertionError:
        raise AssertionError(f"orphans left: {_survivors(pids)}") from None


def _hub_pids(launcher_pid: int, var_dir: Path) -> list[int]:
    """The launcher's descendants plus the embedded servers (daemons, not descendants)."""
    pids = [p.pid for p in psutil.Process(launcher_pid).children(recursive=True)]
    for proc in psutil.process_iter(["cmdline"]):
        if str(var_dir) in " ".join(proc.info["cmdline"] or []):
            pids.append(proc.pid)
    pids.append(int((var_dir / "redis" / "redis.pid").read_text()))
    return pids


def test_make_run_serves_admin_and_stops_everything(embedded_var_dir: Path) -> None:
    var_dir = embedded_var_dir
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    # First start: a generated admin password, printed once and kept in var/.
    launcher = _start_launcher(var_dir, port)
    try:
        wait_for(lambda: http_get(base_url + "/healthz", timeout=5).status == 200, timeout=180, what="web")
        password = (var_dir / "admin_password").read_text().strip()
        assert "Site administration" in _admin_login(base_url, password)

        broker = Celery(broker=f"redis://127.0.0.1:{(var_dir / 'redis' / 'port').read_text()}/0")
        wait_for(lambda: broker.control.ping(timeout=2), timeout=90, what="a Celery worker to answer")
        wait_for(
            lambda: any("beat" in p.cmdline() for p in psutil.Process(launcher.pid).children(recursive=True)),
            timeout=30,
            what="celery beat",
        )
        pids = _hub_pids(launcher.pid, var_dir)
    finally:
        output = _stop(launcher, "sigterm")

    assert launcher.returncode is not None
    assert password in output
    _assert_all_gone(pids)

    # Second start on the same var/: data kept, no new password, Ctrl-C to the group stops it all.
    launcher = _start_launcher(var_dir, port)
    try:
        wait_for(lambda: http_get(base_url + "/healthz", timeout=5).status == 200, timeout=120, what="web again")
        assert "Site administration" in _admin_login(base_url, password)
        pids = _hub_pids(launcher.pid, var_dir)
    finally:
        output = _stop(launcher, "sigint-group")

    assert password not in output
    _assert_all_gone(pids)


def test_admin_password_from_environment(embedded_var_dir: Path) -> None:
    var_dir = embedded_var_dir
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    launcher = _start_launcher(var_dir, port, MCPHUB_ADMIN_PASSWORD="correct-horse-battery")
    try:
        wait_for(lambda: http_get(base_url + "/healthz", timeout=5).status == 200, timeout=180, what="web")
        assert "Site administration" in _admin_login(base_url, "correct-horse-battery")
        assert not (var_dir / "admin_password").exists()
    finally:
        _stop(launcher, "sigterm")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_killed_launcher_leaves_nothing_running(embedded_var_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "launcher.log", "w") as output:
        launcher = _start_launcher(embedded_var_dir, port, output)
    pids: list[int] = []
    try:
        wait_for(lambda: http_get(base_url + "/healthz", timeout=5).status == 200, timeout=180, what="web")
        wait_for(
            lambda: {"worker", "beat"} <= {a for p in psutil.Process(launcher.pid).children(True) for a in p.cmdline()},
            timeout=60,
            what="celery worker and beat",
        )
        pids = _hub_pids(launcher.pid, embedded_var_dir)

        launcher.kill()  # SIGKILL: the launcher runs no cleanup of its own
        launcher.wait()

        _assert_all_gone(pids)
        assert _port_free(port)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for survivor in _survivors(pids):  # leave nothing behind on a shared machine, even when failing
            with contextlib.suppress(psutil.Error):
                psutil.Process(int(survivor.split()[0])).kill()
