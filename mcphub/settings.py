"""Django settings, read from the environment only (see README "Configuration")."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from celery.schedules import crontab

from mcphub import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = embedded.var_dir()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else generated once and kept in the var folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # O_EXCL: when several processes start at once, exactly one writes the key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def redis_db_url(base_url: str, offset: int) -> str:
    """The URL of the Redis database `offset` places after the one REDIS_URL names (default 0)."""
    parts = urlsplit(base_url)
    base_db = int(parts.path.strip("/") or 0)
    return urlunsplit((parts.scheme, parts.netloc, f"/{base_db + offset}", parts.query, ""))


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
PORT = int(os.environ.get("PORT", "8000"))

INSTALLED_APPS = [
    "daphne",  # first, so that `runserver` serves ASGI (Channels)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "mcphub",
    "logs",
    "servers",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mcphub.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "mcphub.urls"
ASGI_APPLICATION = "mcphub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -----------------------------------------------------------------
# DATABASE_URL, else the embedded server under var/ (started on first use).
DATABASE_URL = os.environ.get("DATABASE_URL") or embedded.postgres_url()
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: one server, separate databases ----------------------------------------
# REDIS_URL names the base database N (default 0): broker N, cache N+1, channel layer N+2.
REDIS_URL = os.environ.get("REDIS_URL") or embedded.redis_url()
REDIS_BROKER_URL = redis_db_url(REDIS_URL, 0)
REDIS_CACHE_URL = redis_db_url(REDIS_URL, 1)
REDIS_CHANNELS_URL = redis_db_url(REDIS_URL, 2)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "mcphub",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }
}

# Live dashboard events only (status changes, the call tail): fire and forget, so Redis pub/sub. It pushes
# messages to the one subscriber per web process; the list-based layer takes four round trips per message
# received, which fell behind 1000 events/s while the same loop was sending frames to 500 browsers.
# Pub/sub channels ignore the database number: the prefix keeps hubs that share a Redis server apart.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_CHANNELS_URL}],
            "prefix": "mcphub" + urlsplit(REDIS_CHANNELS_URL).path.replace("/", ":"),
        },
    }
}

# --- Celery (read by mcphub/celery.py with namespace CELERY) ------------------------
CELERY_BROKER_URL = REDIS_BROKER_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The beat schedule, in code: one entry per periodic task (run by `celery -A mcphub beat`).
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# --- Request logs (logs app) -----------------------------------------------------------
LOGS = {
    "RETENTION_MONTHS": int(os.environ.get("LOGS_RETENTION_MONTHS", "6")),  # full months kept besides this one
    "MONTHS_AHEAD": 3,  # partitions created ahead of the current month
    "WRITER_BATCH_SIZE": 1000,  # COPY a batch every this many records...
    "WRITER_FLUSH_INTERVAL": 1.0,  # ...or every this many seconds, whichever comes first
    "WRITER_MAX_BUFFER": 100_000,  # records queued in memory per process
    "SPOOL_DIR": VAR_DIR / "logs-spool",  # records kept here while PostgreSQL is down
    "API_DEFAULT_WINDOW_HOURS": 24,  # GET /api/logs/ without since/until
    "API_MAX_WINDOW_DAYS": 31,  # the widest since..until a request may ask for
}
CELERY_BEAT_SCHEDULE.update(
    {
        "logs-ensure-partitions": {"task": "logs.ensure_partitions", "schedule": crontab(hour=0, minute=17)},
        "logs-drop-old-partitions": {"task": "logs.drop_old_partitions", "schedule": crontab(hour=3, minute=47)},
    }
)

# --- Monitoring: health checks, status, circuit breaker (monitoring app) ------------------
MONITORING = {
    "SCHEDULE_SECONDS": float(os.environ.get("MONITORING_SCHEDULE_SECONDS", "5")),  # beat's fan-out period
    "DEGRADED_LATENCY_MS": float(os.environ.get("MONITORING_DEGRADED_LATENCY_MS", "1000")),  # slower: degraded
    "DOWN_AFTER": int(os.environ.get("MONITORING_DOWN_AFTER", "3")),  # consecutive failed checks: down
    "RECENT_CHECKS": int(os.environ.get("MONITORING_RECENT_CHECKS", "3")),  # any failure among these: degraded
    "STALE_FACTOR": 3.0,  # no check for this many intervals: unknown
    "RETENTION_DAYS": int(os.environ.get("MONITORING_RETENTION_DAYS", "7")),  # health checks kept
    "BREAKER_COOLDOWN": float(os.environ.get("MONITORING_BREAKER_COOLDOWN", "30")),  # s before a trial call
    "STATUS_CACHE_TTL": 2.0,  # seconds /api/status/ and /api/health/ are served from Redis
    "METRICS_WINDOW_MINUTES": 5,  # calls/min, error rate and p95 of /api/status/ cover these minutes
}
CELERY_BEAT_SCHEDULE.update(
    {
        "monitoring-schedule-checks": {
            "task": "monitoring.tasks.schedule_checks",
            "schedule": MONITORING["SCHEDULE_SECONDS"],
            "options": {"expires": MONITORING["SCHEDULE_SECONDS"]},
        },
        "monitoring-prune-health-checks": {
            "task": "monitoring.tasks.prune_health_checks",
            "schedule": crontab(hour=4, minute=23),
        },
    }
)

# --- Auth, sessions, static ----------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, `manage.py runserver`) WhiteNoise serves from the app folders.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Bearer first: its WWW-Authenticate header makes anonymous API requests answer 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "servers.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (a form's strings would not match the schema's types), refusing with a 400 what
    # PostgreSQL or the renderer cannot take and deep nesting; other media types answer 415.
    "DEFAULT_PARSER_CLASSES": ["mcphub.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MCP Hub API",
    "DESCRIPTION": "Registry, status, metrics and request logs of the MCP Hub.",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,  # the schema describes the API, not the schema endpoint itself
    # Swagger UI from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # servers' Era and logs' ProtocolEra are the same choice set: one schema name for both.
    "ENUM_NAME_OVERRIDES": {"ProtocolEraEnum": "logs.models.ProtocolEra"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "servers.api.schema.document_error_responses",
    ],
}

# --- The hub ---------------------------------------------------------------------------
# How long a server's tool list stays cached in Redis (it is also refreshed after discovery).
MCPHUB_TOOLS_CACHE_TTL = int(os.environ.get("MCPHUB_TOOLS_CACHE_TTL", "300"))
# Seconds between two re-listings of one server after its notifications/tools/list_changed
# (further announcements meanwhile are coalesced into the next one).
MCPHUB_RELIST_MIN_INTERVAL = float(os.environ.get("MCPHUB_RELIST_MIN_INTERVAL", "5"))
# /mcp tool names are <slug><separator><tool>; the separator may not contain [a-z0-9-].
MCPHUB_TOOL_SEPARATOR = os.environ.get("MCPHUB_TOOL_SEPARATOR", "__")
if not MCPHUB_TOOL_SEPARATOR or any(c.isalnum() or c == "-" for c in MCPHUB_TOOL_SEPARATOR):
    raise ValueError("MCPHUB_TOOL_SEPARATOR must be non-empty and contain no letters, digits or '-'")
# Largest request body /mcp accepts (then 413).
MCPHUB_MAX_REQUEST_BYTES = int(os.environ.get("MCPHUB_MAX_REQUEST_BYTES", str(4 * 1024 * 1024)))
# Calls waiting for a free slot of one server (beyond its max concurrent calls) before "overloaded".
MCPHUB_MAX_QUEUED_CALLS = int(os.environ.get("MCPHUB_MAX_QUEUED_CALLS", "64"))
# A stateless-era call silent this long turns its answer into an SSE stream with keep-alive pings
# (as the SDK does), so that a proxy's idle-read timeout does not cut a long call.
MCPHUB_SSE_KEEPALIVE_SECONDS = float(os.environ.get("MCPHUB_SSE_KEEPALIVE_SECONDS", "15"))
# The stateless hot path (servers/gateway/stateless.py, servers/upstream/relay.py); off ("0"/"false"),
# every /mcp request goes through the SDK's session manager.
MCPHUB_FAST_PATH = env_bool("MCPHUB_FAST_PATH", default=True)
# Origins allowed to call /mcp from a browser (DNS-rebinding protection); hosts come from ALLOWED_HOSTS.
MCPHUB_ALLOWED_ORIGINS = env_list("MCPHUB_ALLOWED_ORIGINS", "")
# Upstream pools (servers with several instances), read by servers.upstream.pool.PoolSettings.
MCPHUB_POOL = {
    # Calls in flight (or waiting for a free instance) per stdio instance above which, sustained
    # for SCALE_UP_AFTER seconds, one more instance is started (up to the server's max).
    "SCALE_UP_INFLIGHT": float(os.environ.get("MCPHUB_POOL_SCALE_UP_INFLIGHT", "2")),
    "SCALE_UP_AFTER": float(os.environ.get("MCPHUB_POOL_SCALE_UP_AFTER", "5")),
    # Below this per instance for SCALE_DOWN_AFTER seconds, one instance is stopped (down to the min).
    "SCALE_DOWN_INFLIGHT": float(os.environ.get("MCPHUB_POOL_SCALE_DOWN_INFLIGHT", "0.5")),
    "SCALE_DOWN_AFTER": float(os.environ.get("MCPHUB_POOL_SCALE_DOWN_AFTER", "60")),
    # Seconds between pings of instances out of rotation (a success puts them back).
    "PROBE_INTERVAL": float(os.environ.get("MCPHUB_POOL_PROBE_INTERVAL", "2")),
}

# --- Metrics (monitoring.metrics, monitoring.prometheus) -------------------------------------
METRICS = {
    # Each minute rollup recomputes this many past minutes too, so late request-log rows are counted.
    "ROLLUP_REDO_MINUTES": int(os.environ.get("METRICS_ROLLUP_REDO_MINUTES", "5")),
    # Each hourly rollup recomputes this many complete past hours (and the current, partial one).
    "ROLLUP_REDO_HOURS": int(os.environ.get("METRICS_ROLLUP_REDO_HOURS", "2")),
    "MINUTE_RETENTION_DAYS": int(os.environ.get("METRICS_MINUTE_RETENTION_DAYS", "2")),
    "HOUR_RETENTION_DAYS": int(os.environ.get("METRICS_HOUR_RETENTION_DAYS", "90")),
}
# Client networks (CIDR, comma-separated) that may read /metrics without a token; empty: token only.
MCPHUB_METRICS_ALLOWED_NETWORKS = env_list("MCPHUB_METRICS_ALLOWED_NETWORKS", "")
# The metric tasks live in monitoring/metrics.py (Celery autodiscovers only tasks.py modules).
CELERY_IMPORTS = ["monitoring.metrics"]
CELERY_BEAT_SCHEDULE.update(
    {
        "monitoring-rollup-minutes": {
            "task": "monitoring.rollup_minutes",
            "schedule": 60.0,
            "options": {"expires": 55},
        },
        "monitoring-rollup-hours": {
            "task": "monitoring.rollup_hours",
            "schedule": crontab(minute=2),
            "options": {"expires": 3000},
        },
        "monitoring-prune-metrics": {"task": "monitoring.prune_metrics", "schedule": crontab(hour=4, minute=13)},
    }
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"without_traceback": {"()": "mcphub.log_filters.WithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "pgserver": {"level": "WARNING"},
        # A request for a host not in ALLOWED_HOSTS is answered 400: one line, not a traceback.
        "django.security.DisallowedHost": {"filters": ["without_traceback"]},
    },
}
