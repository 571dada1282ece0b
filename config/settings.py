"""Settings, all read from the environment (see README, "Configuration").

Two modes: development (the default: SQLite files in the data directory, a generated secret key,
local-memory cache) and production (``ADMINPANEL_ENV=production``: ``SECRET_KEY`` and
``ALLOWED_HOSTS`` required, secure cookies, HSTS; ``manage.py check --deploy`` is clean).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ.get("ADMINPANEL_ENV", "development").strip().lower()
if ENV not in {"development", "production"}:
    raise ImproperlyConfigured("ADMINPANEL_ENV must be 'development' or 'production'.")
PRODUCTION = ENV == "production"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("ADMINPANEL_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when ADMINPANEL_ENV=production.")
    # Development: generate once and keep it in the data directory, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when ADMINPANEL_ENV=production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Absolute base of the links mailed to people (invitations, recovery, magic links). Required in
# production. In development, when unset, links follow the host and port the request came in on
# (or, outside a request, the HOST and PORT that `make run` serves on): core.request_context.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
if PRODUCTION and not PUBLIC_BASE_URL:
    raise ImproperlyConfigured("PUBLIC_BASE_URL must be set when ADMINPANEL_ENV=production.")
DEVELOPMENT_BASE_URL = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

INSTALLED_APPS = [
    "console.admin_config.ConsoleAdminConfig",  # django.contrib.admin behind password + TOTP
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "auditlog",
    "axes",
    "accounts",
    "tenants",
    "audit",
    "outbox",
    "portal",
    "console",
    # --- Jobs (issue 13): Django's Tasks interface (the django-tasks backport) on its database
    # backend; batchjobs holds the jobs' state, jobs the worker (`manage.py jobs_worker`).
    "django_tasks",
    "django_tasks_db",
    "batchjobs",
    "jobs",
    # --- The admin API (issue 12): credentials (service keys, personal tokens) and the two
    # surfaces (GoTrue-compatible per tenant, native /api/v1/) built with django-ninja.
    "credentials",
    "api",
    # --- Webhooks (issue 14): the event outbox (written with every audit entry) and its delivery.
    "events",
    "webhooks",
]

MIDDLEWARE = [
    "api.middleware.api_middleware",  # API paths: every answer JSON, bodies bounded (first: wraps all)
    "django.middleware.security.SecurityMiddleware",
    "console.middleware.security_headers",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "console.middleware.StaffOTPMiddleware",  # django-otp's, reading the cached snapshot
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.time_zones.activate_time_zone",
    "console.middleware.bind_request_context",
    "console.middleware.require_verified_staff",
    "console.errors.ServiceErrorMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "console.errors.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
            "builtins": [
                "template_partials.templatetags.partials", "core.templatetags.when", "core.templatetags.urls",
            ],
        },
    }
]

# --- Databases -----------------------------------------------------------------------------
# The control database: SQLite in the data directory unless DATABASE_URL says otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'control.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the console read while a batch writes; a busy timeout instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
# DATABASE_POOLER=transaction: every PostgreSQL server is reached through a pooler in transaction
# mode (PgBouncer, README "Connection planning and PgBouncer"): no server-side cursors (a cursor
# would outlive the transaction that holds the server connection), no prepared statements.
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "").strip().lower()
if DATABASE_POOLER not in {"", "transaction"}:
    raise ImproperlyConfigured("DATABASE_POOLER must be empty or 'transaction'.")
if DATABASE_POOLER and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None

# Connection planning (manage.py tenants capacity, and a system check at start-up): how many
# processes and threads open database connections. Web: APP_SERVERS x WEB_WORKERS x WEB_THREADS
# threads; beside them JOB_WORKERS job workers and MAIL_WORKERS mail workers in all.
APP_SERVERS = int(os.environ.get("APP_SERVERS", "1"))
WEB_WORKERS = int(os.environ.get("WEB_WORKERS") or os.environ.get("WEB_CONCURRENCY") or "4")  # the Procfile's
WEB_THREADS = int(os.environ.get("WEB_THREADS", "1"))
JOB_WORKERS = int(os.environ.get("JOB_WORKERS", "1"))
MAIL_WORKERS = int(os.environ.get("MAIL_WORKERS", "1"))

# Where tenant databases live. With SQLite: one file per tenant in TENANT_SQLITE_DIR. With
# PostgreSQL: a database per tenant on one of TENANT_DATABASE_SERVERS ("key=url,key=url"); the key
# "default" is the control server unless given. New tenants go to TENANT_DEFAULT_SERVER.
TENANT_SQLITE_DIR = Path(os.environ.get("TENANT_SQLITE_DIR", DATA_DIR / "tenants")).resolve()
TENANT_DATABASE_SERVERS: dict[str, str] = {}
for _item in env_list("TENANT_DATABASE_SERVERS"):
    _key, _sep, _url = _item.partition("=")
    if not _sep or not _key.strip() or not _url.strip():
        raise ImproperlyConfigured("TENANT_DATABASE_SERVERS must look like 'key=url,key=url'.")
    TENANT_DATABASE_SERVERS[_key.strip()] = _url.strip()
TENANT_DEFAULT_SERVER = os.environ.get("TENANT_DEFAULT_SERVER", "default")
# Placement of new tenants: "count" (the server with the fewest tenants, at most
# TENANT_MAX_PER_SERVER each; 0 = no maximum) or "default" (always TENANT_DEFAULT_SERVER).
TENANT_PLACEMENT = os.environ.get("TENANT_PLACEMENT", "count")
if TENANT_PLACEMENT not in {"count", "default"}:
    raise ImproperlyConfigured("TENANT_PLACEMENT must be 'count' or 'default'.")
TENANT_MAX_PER_SERVER = int(os.environ.get("TENANT_MAX_PER_SERVER", "0"))
# `tenants migrate --all`: tenants migrated at once per server (PostgreSQL; SQLite: one at a time).
TENANT_MIGRATE_CONCURRENCY = int(os.environ.get("TENANT_MIGRATE_CONCURRENCY", "4"))
# PostgreSQL: a plan of schema operations and RunSQL (no RunPython) is collected once per applied
# set and its SQL replayed in each tenant database (tenants/db.py); off: Django's migrate for each.
TENANT_MIGRATE_REPLAY = env_bool("TENANT_MIGRATE_REPLAY", True)
TENANT_DB_PREFIX = os.environ.get("TENANT_DB_PREFIX", "adminpanel_t_")
DATABASE_ROUTERS = ["tenants.router.TenantRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Set to False to skip creating the default tenant when `migrate` runs (the test suite does).
TENANTS_CREATE_DEFAULT_ON_MIGRATE = env_bool("TENANTS_CREATE_DEFAULT_ON_MIGRATE", True)

# --- Scale: tenant templates, connections, capacity (issue 16) -----------------------------
# New tenant databases are copies of a migrated template per schema version (tenants/db.py);
# off: every new tenant runs its migrations (slower, same result).
TENANT_TEMPLATE_DATABASES = env_bool("TENANT_TEMPLATE_DATABASES", True)
# Each worker thread keeps its few most recently used tenant connections open between requests
# (closed after TENANT_CONN_MAX_AGE seconds, or when the thread needs another one); 0 closes
# them after every request. The process registers at most TENANT_ALIASES_MAX tenant aliases
# (least recently used evicted; an evicted one comes back by itself when used).
TENANT_CONNECTIONS_PER_THREAD = int(os.environ.get("TENANT_CONNECTIONS_PER_THREAD", "4"))
TENANT_CONN_MAX_AGE = int(os.environ.get("TENANT_CONN_MAX_AGE", "300"))
TENANT_ALIASES_MAX = int(os.environ.get("TENANT_ALIASES_MAX", "64"))

# --- Cache: Redis when REDIS_URL is set (lockout counters shared across workers) -------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "adminpanel"),
        }
    }
else:
    # Without Redis, the control database holds the cache (`manage.py createcachetable`), so
    # lockout and rate-limit counters are still shared by every worker.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "adminpanel_cache",
        }
    }

# --- Authentication ------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend with the staff user (and their devices) read through the shared cache
    # (accounts.identity); sessions of the old path sign in again once.
    "accounts.backends.StaffBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        # The policy's number (core/policy.py), overridable through SECURITY_POLICY.
        "OPTIONS": {
            "min_length": int(
                json.loads(os.environ.get("SECURITY_POLICY", "{}")).get("staff_password_min_length", 12)
            )
        },
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- Security policy numbers (core/policy.py reads these; override per deployment) ----
SECURITY_POLICY: dict[str, int] = json.loads(os.environ.get("SECURITY_POLICY", "{}"))
# Client address for audit and rate limits: the socket peer, unless a trusted proxy header is
# configured (for example "X-Real-IP" set by your load balancer). Never the left-most XFF.
TRUSTED_PROXY_HEADER = os.environ.get("TRUSTED_PROXY_HEADER", "")

# django-axes: per-account lockout, counters in the cache (shared across workers via Redis).
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_USERNAME_FORM_FIELD = "email"
# Numbers from core.policy (5 failures → 15 minutes). The counter is reset by a complete
# sign-in (password and TOTP, accounts.lockout.reset), not by the password alone: TOTP failures
# count toward the same limit. A locked account gets the wrong-password page, unchanged.
AXES_RESET_ON_SUCCESS = False
AXES_FAILURE_LIMIT = "accounts.lockout.axes_failure_limit"
AXES_COOLOFF_TIME = "accounts.lockout.axes_cooloff"
AXES_USERNAME_CALLABLE = "accounts.lockout.axes_username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.axes_lockout_response"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_VERBOSE = False
SILENCED_SYSTEM_CHECKS = [
    # axes.W006 asks to lock by address as well. The policy locks per account: a per-address lock
    # would let anyone behind the same NAT lock every staff member out.
    "axes.W006",
]

# --- Sessions and cookies ------------------------------------------------------------------
# With Redis, sessions are read from it (and written to both): no query a request. Without it the
# cache is a table of the same database, so the session table is read directly.
SESSION_ENGINE = "django.contrib.sessions.backends." + ("cached_db" if REDIS_URL else "db")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; see base.html
SESSION_COOKIE_NAME = "adminpanel_session"
# The absolute limit of a staff session (policy: 12 hours); the idle limit (30 minutes) and the
# absolute one are enforced by console.middleware.require_verified_staff.
SESSION_COOKIE_AGE = int(SECURITY_POLICY.get("staff_session_absolute_hours", 12)) * 3600
CSRF_COOKIE_NAME = "adminpanel_csrftoken"

# --- Audit (django-auditlog with our own entry model) --------------------------------------
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
AUDITLOG_CID_GETTER = "core.request_context.get_correlation_id"
AUDITLOG_DISABLE_REMOTE_ADDR = False

# --- Mail ----------------------------------------------------------------------------------
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Admin Console <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if PRODUCTION and not EMAIL_HOST and not os.environ.get("EMAIL_BACKEND"):
    # Without a mail server, links (with their tokens) would be printed to the logs.
    raise ImproperlyConfigured("Set EMAIL_HOST (or EMAIL_BACKEND) when ADMINPANEL_ENV=production.")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
# The directory of Django's file-based backend (EMAIL_BACKEND=...filebased.EmailBackend), where
# the deployed test tier reads the mails its workers send.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH") or None
# Whether the outbox keeps the links of sent messages and shows them at /mail/. In development
# that is how a link is followed without an SMTP server; in production a stored or displayed link
# would be a live credential, so tokens are blanked once sent and never shown.
OUTBOX_KEEP_LINKS = env_bool("OUTBOX_KEEP_LINKS", not PRODUCTION)
# "inline": mail is sent right after the transaction commits, inside the request (development).
# "worker": it waits in the outbox for `manage.py deliver_mail --loop` (production), so no
# request waits for SMTP, and "send me a link" answers as fast for unknown addresses.
OUTBOX_DELIVERY = os.environ.get("OUTBOX_DELIVERY", "worker" if PRODUCTION else "inline")
if OUTBOX_DELIVERY not in {"inline", "worker"}:
    raise ImproperlyConfigured("OUTBOX_DELIVERY must be 'inline' or 'worker'.")

# --- Jobs (issue 13) -----------------------------------------------------------------------
# The runner: Django's Tasks interface (django-tasks, the backport of Django 6's django.tasks)
# with its database backend (django-tasks-db): tasks are rows in the control database, and any
# number of `manage.py jobs_worker` processes, on any machines, share them. A job's progress
# lives in our own tables (batchjobs); the runner only wakes workers. README "Background jobs".
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        # "jobs": batch jobs, imports, migrate --all; "webhooks": webhook deliveries;
        # "default": anything else. A worker serves every queue unless told otherwise.
        "QUEUES": ["default", "jobs", "webhooks"],
    }
}
# Users per chunk: one transaction in the tenant database (the changes and their outcomes), then
# one in the control database (their audit entries, mails and the job's counters).
JOBS_CHUNK_SIZE = int(os.environ.get("JOBS_CHUNK_SIZE", "1000"))
# A claimed chunk belongs to its worker this long; after that (or as soon as the worker is
# known dead) another worker takes it over.
JOBS_LEASE_SECONDS = int(os.environ.get("JOBS_LEASE_SECONDS", "60"))
# Each worker writes a heartbeat this often; three missed beats and it counts as dead: its
# running tasks are queued again and its chunks released.
JOBS_HEARTBEAT_SECONDS = float(os.environ.get("JOBS_HEARTBEAT_SECONDS", "2"))
# A job's task hands the worker back after this long (and queues its own continuation), so one
# long job never starves the other tasks of a worker.
JOBS_SLICE_SECONDS = float(os.environ.get("JOBS_SLICE_SECONDS", "20"))
# Tasks queued per job: that many workers share one job's chunks.
JOBS_RUNNERS_PER_JOB = int(os.environ.get("JOBS_RUNNERS_PER_JOB", "2"))

# --- Events and webhooks (issue 14) ------------------------------------------------------------
# Every audited change writes its event (the source of webhooks and of the API's event feed).
# Off only to measure what events cost (make bench).
EVENTS_ENABLED = env_bool("EVENTS_ENABLED", True)
# Deliveries to private, loopback and link-local addresses: refused unless this is set
# (development, tests). Checked at send time, after DNS resolution.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", False)
# The whole request (connect, send, answer) of one delivery attempt.
WEBHOOKS_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOKS_TIMEOUT_SECONDS", "10"))
# Seconds before each retry after a failed attempt (network error or non-2xx); after the last,
# the delivery has failed (it can still be replayed).
WEBHOOKS_RETRY_SCHEDULE = [
    float(s) for s in os.environ.get("WEBHOOKS_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000").split(",")
]
# An endpoint that failed every attempt for this long is disabled and its admins are mailed.
WEBHOOKS_DISABLE_AFTER_HOURS = float(os.environ.get("WEBHOOKS_DISABLE_AFTER_HOURS", "120"))
# One delivery run per endpoint at a time (a lease), each handing the worker back after a slice.
WEBHOOKS_LEASE_SECONDS = float(os.environ.get("WEBHOOKS_LEASE_SECONDS", "60"))
WEBHOOKS_SLICE_SECONDS = float(os.environ.get("WEBHOOKS_SLICE_SECONDS", "20"))

# --- Static files --------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at start-up when it is missing
WHITENOISE_USE_FINDERS = not PRODUCTION  # development serves straight from static/
WHITENOISE_AUTOREFRESH = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Production hardening ------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    if os.environ.get("SECURE_PROXY_SSL_HEADER"):
        # e.g. "X-Forwarded-Proto" when TLS ends at a trusted load balancer
        SECURE_PROXY_SSL_HEADER = (
            "HTTP_" + os.environ["SECURE_PROXY_SSL_HEADER"].upper().replace("-", "_"),
            "https",
        )

# No URL holding a live link token is ever written to a log (SECURITY.md): every handler here
# carries core.redaction.TokenMaskFilter, including runserver's request lines ("django.server",
# replaced here so it gets the filter); gunicorn's access log masks with config.gunicorn_logger.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_tokens": {"()": "core.redaction.TokenMaskFilter"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["mask_tokens"]},
        "django.server": {
            "class": "logging.StreamHandler", "formatter": "django.server", "filters": ["mask_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}

# --- Stored tenant figures (issue 16) ------------------------------------------------------
# The instance pages read each tenant's user figures from the control database
# (tenants.TenantFigures); the job runner counts them after changes and, for the rest, every
# TENANT_FIGURES_SWEEP_SECONDS refreshes up to TENANT_FIGURES_SWEEP_BATCH tenants whose figures
# are older than TENANT_FIGURES_MAX_AGE seconds.
TENANT_FIGURES_MAX_AGE = int(os.environ.get("TENANT_FIGURES_MAX_AGE", "900"))
TENANT_FIGURES_SWEEP_SECONDS = int(os.environ.get("TENANT_FIGURES_SWEEP_SECONDS", "60"))
TENANT_FIGURES_SWEEP_BATCH = int(os.environ.get("TENANT_FIGURES_SWEEP_BATCH", "200"))
