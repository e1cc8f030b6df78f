"""Hub settings whose request-log writer never writes on its own: only a stop's final flush can write."""

from mcphub.settings import *  # noqa: F403

LOGS_WRITER_FLUSH_INTERVAL = 3600.0
