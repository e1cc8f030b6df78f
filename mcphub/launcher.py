"""`make run`: prepare the hub and run web, worker and beat together (Procfile, via honcho).

Steps: embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset, migrate,
ensure the admin user, collect static files, then `honcho start`. On Ctrl-C or
SIGTERM honcho stops every process group it started; then the embedded servers
this launcher started are stopped too, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from mcphub import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def _prepare_environment() -> dict[str, str]:
    """The environment every hub process inherits: one database and one Redis for all of them."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded.redis_url()
    os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
    # The Procfile's commands (uvicorn, celery) come from this interpreter's venv.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ["PYTHONUNBUFFERED"] = "1"
    return dict(os.environ)


def _prepare_database() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    call_command("ensure_admin")
    call_command("collectstatic", interactive=False, verbosity=0)


def main() -> int:
    env = _prepare_environment()
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

        def forward(signum: int, frame: FrameType | None) -> None:
            # Ctrl-C reaches honcho directly (same terminal group); SIGTERM may not.
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return honcho.wait()
    finally:
        embedded.stop(started_here_only=True)


if __name__ == "__main__":
    sys.exit(main())
