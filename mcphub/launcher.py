"""`make run`: prepare the hub and run web, worker and beat together (Procfile, via honcho).

Steps: embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset, migrate,
ensure the admin user, collect static files, then `honcho start`. On Ctrl-C or
SIGTERM honcho stops every process group it started (SIGKILL after 5 s; the web
process stops well within that, see the Procfile); then the embedded servers
this launcher started are stopped too, so nothing is left running.

A launcher that is killed outright (SIGKILL, OOM) runs no cleanup, so a watchdog
does it: a small process of its own session (`--watchdog`), told on a pipe what
the launcher started. When the pipe closes, the launcher is gone, however it
ended: the watchdog stops honcho (which stops web, worker and beat), any process
of honcho's tree still running (it notes the tree every second), then the
embedded servers the launcher started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

import django
import psutil
from django.core.management import call_command

from mcphub import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
WATCH_INTERVAL = 1.0  # seconds between two notes of honcho's process tree
HONCHO_STOP_TIMEOUT = 15.0  # honcho's own grace (5 s) and then some


def _prepare_environment() -> dict[str, str]:
    """The environment every hub process inherits: one database and one Redis for all of them."""
    embedded.start_unconfigured()
    os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
    # The Procfile's commands (uvicorn, celery) come from this interpreter's venv.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ["PYTHONUNBUFFERED"] = "1"
    return dict(os.environ)


def _prepare_database() -> None:
    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    call_command("ensure_admin")
    call_command("collectstatic", interactive=False, verbosity=0)


def _start_watchdog() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mcphub.launcher", "--watchdog"],
        cwd=BASE_DIR,
        stdin=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C to the terminal's group, or a kill of that group, does not reach it
    )


def _tell(watchdog: subprocess.Popen[str], *words: str) -> None:
    assert watchdog.stdin is not None
    watchdog.stdin.write(" ".join(words) + "\n")
    watchdog.stdin.flush()


def main() -> int:
    watchdog = _start_watchdog()
    env = _prepare_environment()
    _tell(watchdog, "embedded", *embedded.started_here())
    try:
        _prepare_database()
        port = env["PORT"]
        print(
            f"\nMCP Hub on http://127.0.0.1:{port}/\n"
            f"  admin      http://127.0.0.1:{port}/admin/  (user: admin)\n"
            f"  MCP        http://127.0.0.1:{port}/mcp\n"
            f"  health     http://127.0.0.1:{port}/healthz\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(BASE_DIR / "Procfile"), "-d", str(BASE_DIR)],
            env=env,
        )
        _tell(watchdog, "honcho", str(honcho.pid))

        def forward(signum: int, frame: FrameType | None) -> None:
            # Ctrl-C reaches honcho directly (same terminal group); SIGTERM may not.
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return honcho.wait()
    finally:
        embedded.stop(started_here_only=True)
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # all stopped: the watchdog finds nothing left to do
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=30)


def watch() -> int:
    """The watchdog's loop: note honcho's process tree until the launcher's pipe closes, then stop it all."""
    messages: list[list[str]] = []
    launcher_gone = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            messages.append(line.split())
        launcher_gone.set()

    threading.Thread(target=read, daemon=True).start()
    honcho: psutil.Process | None = None
    tree: dict[int, psutil.Process] = {}
    while True:
        gone = launcher_gone.wait(WATCH_INTERVAL)
        for words in messages:
            if words[:1] == ["honcho"] and honcho is None:
                with contextlib.suppress(psutil.Error):
                    honcho = psutil.Process(int(words[1]))
        if honcho is not None:
            with contextlib.suppress(psutil.Error):
                tree.update({child.pid: child for child in honcho.children(recursive=True)})
        if gone:
            break
    _stop_tree(honcho, list(tree.values()))
    started = {name for words in messages if words[:1] == ["embedded"] for name in words[1:]}
    embedded.stop_named(started)
    return 0


def _stop_tree(honcho: psutil.Process | None, tree: list[psutil.Process]) -> None:
    """SIGTERM honcho (it stops its processes); then SIGTERM, and SIGKILL after 10 s, whatever still runs."""
    if honcho is not None and honcho.is_running():
        print("mcphub: the launcher is gone; stopping what it started", file=sys.stderr, flush=True)
        with contextlib.suppress(psutil.Error):
            honcho.terminate()
            psutil.wait_procs([honcho], timeout=HONCHO_STOP_TIMEOUT)
    left = [process for process in tree if process.is_running()]
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _gone, alive = psutil.wait_procs(left, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


if __name__ == "__main__":
    sys.exit(watch() if sys.argv[1:] == ["--watchdog"] else main())
