"""Django settings, read from the environment only (see README "Configuration")."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

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
        VAR_DIR.mkdir(parents=True, exist_ok=True)
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
# DATABASE_URL, else the embedded server under var/ (started by the entry points, see mcphub/embedded.py).
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
# The beat schedule is in mcphub/celery.py.

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
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
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

# --- The apps' own settings -----------------------------------------------------------------
# Read through each app's conf.py (logs/conf.py, servers/conf.py, monitoring/conf.py), which holds each
# one's type, default and meaning. The environment sets those named below (the README's) under the same
# name; unset, conf.py's default applies.
APP_SETTINGS_FROM_ENVIRONMENT = (
    "LOGS_RETENTION_MONTHS",
    "MCPHUB_TOOL_SEPARATOR",
    "MCPHUB_MAX_REQUEST_BYTES",
    "MCPHUB_MAX_QUEUED_CALLS",
    "MCPHUB_MAX_HELD_CALLS",
    "MCPHUB_SSE_KEEPALIVE_SECONDS",
    "MCPHUB_TOOLS_CACHE_TTL",
    "MCPHUB_RELIST_MIN_INTERVAL",
    "MCPHUB_POOL_SCALE_UP_INFLIGHT",
    "MCPHUB_POOL_SCALE_UP_AFTER",
    "MCPHUB_POOL_SCALE_DOWN_INFLIGHT",
    "MCPHUB_POOL_SCALE_DOWN_AFTER",
    "MCPHUB_POOL_PROBE_INTERVAL",
    "MONITORING_SCHEDULE_SECONDS",
    "MONITORING_DEGRADED_LATENCY_MS",
    "MONITORING_DOWN_AFTER",
    "MONITORING_RECENT_CHECKS",
    "MONITORING_RETENTION_DAYS",
    "MONITORING_BREAKER_COOLDOWN",
    "METRICS_ROLLUP_REDO_MINUTES",
    "METRICS_ROLLUP_REDO_HOURS",
    "METRICS_MINUTE_RETENTION_DAYS",
    "METRICS_HOUR_RETENTION_DAYS",
)
APP_LIST_SETTINGS_FROM_ENVIRONMENT = ("MCPHUB_ALLOWED_ORIGINS", "MCPHUB_METRICS_ALLOWED_NETWORKS")  # comma-separated
APP_BOOL_SETTINGS_FROM_ENVIRONMENT = ("MCPHUB_FAST_PATH",)  # 1/true/yes/on; anything else ("0", "false") is off
globals().update({name: os.environ[name] for name in APP_SETTINGS_FROM_ENVIRONMENT if name in os.environ})
globals().update({name: env_list(name, "") for name in APP_LIST_SETTINGS_FROM_ENVIRONMENT if name in os.environ})
globals().update({name: env_bool(name) for name in APP_BOOL_SETTINGS_FROM_ENVIRONMENT if name in os.environ})

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
