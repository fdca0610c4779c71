"""Settings for Mistral Chat: every value comes from the environment, with a default here.

The table in README.md lists them. Production (DEBUG off) refuses to start
without a SECRET_KEY rather than run on a known one.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp import secret_key
from webapp.accounts.oidc_settings import OidcSettingsError, check_oidc_settings
from webapp.accounts.signup_settings import SignupSettingsError, check_signup_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()] or default


DEBUG = env_bool("DEBUG", False)
# The environment wins; else the checkout's key file, which only `make run` creates
# (webapp/secret_key.py), so that its `manage.py` commands sign with the same key.
SECRET_KEY = os.environ.get("SECRET_KEY", "") or secret_key.read_key(secret_key.key_path())
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it in the environment, or run `make run` "
            f"once in this checkout to generate {secret_key.key_path()} (or set DEBUG=1 for development)."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webapp.accounts",
    "webapp.chat",
    "webapp.moderation",
    "webapp.api",
    "webapp.sharing",
]

MIDDLEWARE = [
    "webapp.metrics.middleware.RequestMetricsMiddleware",  # first: times the whole stack
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "webapp.accounts.middleware.SanctionMiddleware",  # bans end sessions; warnings shown once
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

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
                "webapp.accounts.context_processors.access",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Daphne's threads and the worker's threads write at once. WAL: reads go on
    # while one connection writes. IMMEDIATE: a transaction takes the write lock
    # when it begins, so one that read first (a send checks, then writes) never
    # fails to upgrade its lock midway, which no timeout can wait out. The
    # timeout: wait up to that many seconds for the lock rather than fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        transaction_mode="IMMEDIATE",
        timeout=20,
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_int("DATABASE_POOL_SIZE", 16):
    # A pool of connections per process (psycopg_pool): every socket call, page and job
    # opened and closed its own connection (CONN_MAX_AGE=0, which Django asks for under
    # ASGI), and connecting cost more CPU than the queries of a `send`.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_SIZE", 16),
        "timeout": 30,
    }
# The hot path's statements, compiled once (webapp/prepared.py), run as server-side
# prepared statements on PostgreSQL: parsed and planned once a connection instead of
# at every call (PostgreSQL's CPU for a burst's sends: a third to a half less). Off (0) behind a
# pooler that hands one session's statements to several server connections
# (PgBouncer in transaction mode, before 1.21's max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_PREPARED_STATEMENTS:
    # psycopg prepares nothing while this is None (Django's default); Django's own
    # cursors bind on the client and never prepare, so only webapp/prepared.py's do.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static/ straight from the finders: no collectstatic step to
# forget. A deployment that collects (to put a CDN in front) sets STATIC_ROOT.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

# Login throttling (webapp.accounts.throttle): this many failed log-ins for one
# username from one address within the window, then HTTP 429 until it ends; 0 = off.
LOGIN_FAILURES_LIMIT = env_int("LOGIN_FAILURES_LIMIT", 5)
LOGIN_FAILURES_WINDOW_S = env_int("LOGIN_FAILURES_WINDOW_S", 300)

# --- Sign-up and roles (docs/identity.md) -------------------------------------
# open: anybody; closed: invitations only; approval: new accounts wait for an
# administrator; domains: the e-mail address must be at one of SIGNUP_DOMAINS.
try:
    SIGNUP_MODE, SIGNUP_DOMAINS = check_signup_settings(
        os.environ.get("SIGNUP_MODE", "open"), os.environ.get("SIGNUP_DOMAINS", "")
    )
except SignupSettingsError as error:
    raise ImproperlyConfigured(str(error)) from None
# How long an administrator's invitation link stays usable, in days.
INVITATION_DAYS = env_int("INVITATION_DAYS", 7)
# What people whose groups say nothing else may do (the counts are below, with the quotas).
API_ALLOWED_DEFAULT = env_bool("API_ALLOWED_DEFAULT", True)
EXPORTS_ALLOWED_DEFAULT = env_bool("EXPORTS_ALLOWED_DEFAULT", True)

# --- Single sign-on (OpenID Connect, docs/identity.md) ------------------------
# Local accounts (password log-in, sign-up, invitations); 0 leaves only the SSO buttons.
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
# A JSON list of providers: [{"id", "label", "issuer", "client_id", "client_secret",
# "scopes", "groups_claim"}]; http:// issuers only with DEBUG (or in tests).
# LDAP sign-in through the log-in form (django-auth-ldap); empty: none. The other LDAP_* are
# read only when it is set (webapp/accounts/ldap_settings.py).
LDAP_SERVER_URI = os.environ.get("LDAP_SERVER_URI", "").strip()
try:
    OIDC_PROVIDERS = check_oidc_settings(
        os.environ.get("OIDC_PROVIDERS", ""),
        local_login=LOCAL_LOGIN or bool(LDAP_SERVER_URI),
        allow_http=DEBUG or env_bool("OIDC_ALLOW_HTTP", False),
    )
except OidcSettingsError as error:
    raise ImproperlyConfigured(str(error)) from None
# Seconds to wait for a provider (discovery, keys, token) before saying it does not answer.
OIDC_TIMEOUT_S = env_int("OIDC_TIMEOUT_S", 10)
LDAP_GROUPS_FOLLOW = False
if LDAP_SERVER_URI:
    from webapp.accounts.ldap_settings import LdapSettingsError, ldap_settings

    try:
        globals().update(ldap_settings(os.environ))
    except LdapSettingsError as error:
        raise ImproperlyConfigured(str(error)) from None
    # The directory first; Django's own for local accounts (and every session, whoever made it).
    AUTHENTICATION_BACKENDS = [
        "webapp.accounts.ldap_backend.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Production is HTTPS only: plain HTTP is redirected (except /healthz, for load
# balancers' probes) and browsers are told to remember it (HSTS). Behind a
# proxy that ends TLS, set SECURE_PROXY_SSL_HEADER=1 so that its
# X-Forwarded-Proto says which requests came in over HTTPS.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# The preload directive only allows a submission to the browsers' list; nothing submits it.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Django's defaults, stated because the security tests hold them: nosniff,
# no framing, same-origin referrers and opener.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp), behind DOMPurify: scripts, styles and
# connections only from our own origin, no inline script, style or handler, no
# framing. `'self'` in connect-src covers this origin's ws:/wss: (CSP Level 3).
# The HTML export sets a stricter policy of its own (export_views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Redis: Celery broker, channel layer, live reply state -----------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Prefix of every Redis key and channel this deployment uses, so that two
# deployments (or a test run) can share one Redis without crossing.
REDIS_PREFIX = os.environ.get("REDIS_PREFIX", "mchat")

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer delivers in order with no per-channel capacity to
        # overflow silently (RedisChannelLayer drops past `capacity`), and is
        # several times faster from one sender (see DESIGN).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:layer"},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"inference.*": {"queue": "inference"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
# A worker takes one job per free thread; the rest wait in Redis where any
# worker can take them and `/healthz` can count them. That needs late acks:
# a job acked as it starts would open the prefetch window, and a busy worker
# would hoard the next jobs in its own memory.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Seconds between two heartbeats of a worker; a heartbeat lives three of them, and a
# reply whose worker's heartbeat is gone is failed by the sweeper (docs/operations.md).
WORKER_HEARTBEAT_S = env_int("WORKER_HEARTBEAT_S", 5)

# --- Metrics (docs/operations.md) --------------------------------------------
# The bearer token of `/metrics`; unset, it answers only from loopback. The
# series of several processes add up when PROMETHEUS_MULTIPROC_DIR (read by
# prometheus-client itself, not here) names a folder they share.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Model and generation --------------------------------------------------
MODEL_PATH = os.environ.get("MODEL_PATH", "")
MODEL_DEVICE = os.environ.get("MODEL_DEVICE", "")
MODEL_DTYPE = os.environ.get("MODEL_DTYPE", "")
MAX_BATCH = env_int("MAX_BATCH", 32)
CONTEXT_LIMIT = env_int("CONTEXT_LIMIT", 32768)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 20000)
MAX_SYSTEM_PROMPT_CHARS = env_int("MAX_SYSTEM_PROMPT_CHARS", 8000)
DEFAULT_MAX_TOKENS = env_int("DEFAULT_MAX_TOKENS", 512)
MAX_TOKENS_LIMIT = env_int("MAX_TOKENS_LIMIT", 4096)
# New conversations start with Mistral's guardrail prompt on (each can turn it off).
GUARDRAIL_DEFAULT = env_bool("GUARDRAIL_DEFAULT", True)
# Where the worker gets its engine: the paged one; `inference.engine.load_engine` is the
# previous eager engine (kept for side-by-side benchmarks), a test points this at a scripted one.
INFERENCE_ENGINE = os.environ.get("INFERENCE_ENGINE", "inference.paged_engine.load_engine")
# The paged engine's KV cache: KV_CACHE_GB of memory when set (> 0), else on CUDA
# KV_CACHE_FRACTION of the memory free once the weights are loaded (on the CPU, 0.25 GB).
KV_CACHE_GB = env_float("KV_CACHE_GB", 0.0)
KV_CACHE_FRACTION = env_float("KV_CACHE_FRACTION", 0.9)
KV_BLOCK_SIZE = env_int("KV_BLOCK_SIZE", 16)  # tokens per cache block (the prefix cache shares whole blocks)
# Tokens computed per engine step at most: a long prompt is prefilled in chunks of what is
# left of it after the decoding rows, so they never wait more than one chunk's time.
MAX_TOKENS_PER_STEP = env_int("MAX_TOKENS_PER_STEP", 2048)
PREFIX_CACHE = env_bool("PREFIX_CACHE", True)
CUDA_GRAPHS = env_bool("CUDA_GRAPHS", True)  # capture the decode step per batch size on CUDA

# --- Rate limits and quotas per user (webapp/chat/quotas.py); 0 turns one off --
RATE_LIMIT_MESSAGES_PER_MINUTE = env_int("RATE_LIMIT_MESSAGES_PER_MINUTE", 20)
QUOTA_TOKENS_PER_DAY = env_int("QUOTA_TOKENS_PER_DAY", 500_000)  # prompt + completion, per UTC day
MAX_LIVE_REPLIES_PER_USER = env_int("MAX_LIVE_REPLIES_PER_USER", 1)
# Share links a person may make in any hour (webapp/sharing; docs/sharing.md).
SHARE_LINKS_PER_HOUR = env_int("SHARE_LINKS_PER_HOUR", 20)

# --- OpenAI-compatible API (docs/api.md) -------------------------------------
# Keep API requests as conversations in the person's list and exports; when
# off, each is deleted after its response (kept, hidden, if moderation caught something).
API_STORE_CONVERSATIONS = env_bool("API_STORE_CONVERSATIONS", True)
# The model id the API answers to; empty: the name the workers report.
API_MODEL_NAME = os.environ.get("API_MODEL_NAME", "")
# A request that has not ended by then is stopped and answered with what it has.
API_REPLY_TIMEOUT_S = env_int("API_REPLY_TIMEOUT_S", 600)

# --- Moderation --------------------------------------------------------------
# The hook chain, run in order like middleware (docs/moderation.md).
MODERATION_HOOKS = env_list(
    "MODERATION_HOOKS",
    [
        "webapp.moderation.hooks.DatabaseRulesHook",
        "inference.moderation.pii.PiiHook",
        "webapp.moderation.configured_hooks.OffensiveLanguageHook",
        "webapp.moderation.configured_hooks.SelfReflectionJudge",
    ],
)
MODERATION_BUDGET_MS = env_int("MODERATION_BUDGET_MS", 50)  # per hook call
MODERATION_FAIL_CLOSED = env_bool("MODERATION_FAIL_CLOSED", False)  # a failed hook blocks instead of allowing
# The offensive-language classifier: a verdict at this probability or above (flag or block).
MODERATION_OFFENSIVE_THRESHOLD = float(os.environ.get("MODERATION_OFFENSIVE_THRESHOLD") or 0.9)
MODERATION_OFFENSIVE_ACTION = os.environ.get("MODERATION_OFFENSIVE_ACTION") or "flag"
# The self-reflection judge: auto (on only with MODEL_PATH set), on, off.
MODERATION_JUDGE = os.environ.get("MODERATION_JUDGE") or "auto"
MODERATION_JUDGE_THRESHOLD = float(os.environ.get("MODERATION_JUDGE_THRESHOLD") or 0.5)
MODERATION_JUDGE_ACTION = os.environ.get("MODERATION_JUDGE_ACTION") or "flag"
MODERATION_JUDGE_TIMEOUT_MS = env_int("MODERATION_JUDGE_TIMEOUT_MS", 5000)
# An external moderation endpoint (add webapp.moderation.configured_hooks.ExternalModerationHook
# to MODERATION_HOOKS): schema openai, mistral or mistral-chat.
MODERATION_EXTERNAL_URL = os.environ.get("MODERATION_EXTERNAL_URL", "")
MODERATION_EXTERNAL_API_KEY = os.environ.get("MODERATION_EXTERNAL_API_KEY", "")
MODERATION_EXTERNAL_SCHEMA = os.environ.get("MODERATION_EXTERNAL_SCHEMA") or "mistral"
MODERATION_EXTERNAL_MODEL = os.environ.get("MODERATION_EXTERNAL_MODEL", "")  # empty: the schema's default
MODERATION_EXTERNAL_TIMEOUT_MS = env_int("MODERATION_EXTERNAL_TIMEOUT_MS", 2000)
MODERATION_EXTERNAL_THRESHOLD = float(os.environ.get("MODERATION_EXTERNAL_THRESHOLD") or 0.5)
MODERATION_EXTERNAL_ACTION = os.environ.get("MODERATION_EXTERNAL_ACTION") or "block"
# Streamed text is held back this many characters, so that a phrase split
# across tokens is caught before any part of it is sent.
STREAM_HOLDBACK_CHARS = env_int("STREAM_HOLDBACK_CHARS", 64)

# Threads per Daphne process for the sockets' database and Redis calls (webapp/chat/consumers.py);
# 0: Channels' one shared thread.
SOCKET_THREADS = env_int("SOCKET_THREADS", 8)

# Streamed text is published every STREAM_COALESCE_MS or every
# STREAM_COALESCE_TOKENS tokens, whichever comes first.
STREAM_COALESCE_MS = env_int("STREAM_COALESCE_MS", 30)
STREAM_COALESCE_TOKENS = env_int("STREAM_COALESCE_TOKENS", 16)

# --- Exports and imports (docs/exports.md) --------------------------------
# An upload over IMPORT_MAX_BYTES is refused unread; so is one zip entry over it.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 20_000_000)
# A zip is refused, before any entry is read, when its entries would unpack to
# more than this in all, or when it has more entries than IMPORT_MAX_ZIP_ENTRIES.
IMPORT_MAX_UNCOMPRESSED_BYTES = env_int("IMPORT_MAX_UNCOMPRESSED_BYTES", 200_000_000)
IMPORT_MAX_ZIP_ENTRIES = env_int("IMPORT_MAX_ZIP_ENTRIES", 10_000)
IMPORT_MAX_MESSAGES = env_int("IMPORT_MAX_MESSAGES", 10_000)
# User messages are held to MAX_MESSAGE_CHARS as when sent; replies (and
# their errors) may be longer, since MAX_TOKENS_LIMIT tokens can run past it.
IMPORT_MAX_REPLY_CHARS = env_int("IMPORT_MAX_REPLY_CHARS", 100_000)

# --- Retention (docs/operations.md: Retention) --------------------------------
# Conversations untouched (no new message) for longer than this many days are deleted,
# with their messages; 0 keeps them for ever. Each person may choose a shorter time on
# their account page (RETENTION_CHOICES_DAYS, those under this limit).
RETENTION_DAYS = env_int("RETENTION_DAYS", 0)
RETENTION_CHOICES_DAYS = [int(days) for days in env_list("RETENTION_CHOICES_DAYS", ["30", "90", "365"])]
# A temporary chat (unlisted, unsearched, never exported) is deleted this long after it starts.
TEMPORARY_CHAT_HOURS = env_int("TEMPORARY_CHAT_HOURS", 24)
# The schedule (Celery beat): seconds between two runs, 0 for none; conversations per batch.
RETENTION_INTERVAL_S = env_int("RETENTION_INTERVAL_S", 900)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 200)
if RETENTION_DAYS < 0 or TEMPORARY_CHAT_HOURS < 1 or RETENTION_BATCH_SIZE < 1 or RETENTION_INTERVAL_S < 0:
    raise ImproperlyConfigured(
        "RETENTION_DAYS and RETENTION_INTERVAL_S must be 0 or more, TEMPORARY_CHAT_HOURS and "
        "RETENTION_BATCH_SIZE 1 or more."
    )
if any(days < 1 for days in RETENTION_CHOICES_DAYS):
    raise ImproperlyConfigured("RETENTION_CHOICES_DAYS must list whole numbers of days, 1 or more.")
# Organising (webapp/chat/organise.py): folders a person may have, conversations one
# bulk action on the list page may change (the page shows 50 at a time).
MAX_FOLDERS = env_int("MAX_FOLDERS", 200)
MAX_BULK_CONVERSATIONS = env_int("MAX_BULK_CONVERSATIONS", 200)
if MAX_FOLDERS < 1 or MAX_BULK_CONVERSATIONS < 1:
    raise ImproperlyConfigured("MAX_FOLDERS and MAX_BULK_CONVERSATIONS must be 1 or more.")
# Beat sends the job to the `maintenance` queue, which only the maintenance worker reads
# (scripts/supervisord.conf), never the inference workers.
CELERY_TASK_ROUTES["webapp.chat.*"] = {"queue": "maintenance"}
CELERY_BEAT_SCHEDULE = (
    {
        "apply-retention": {
            "task": "webapp.chat.apply_retention",
            "schedule": float(RETENTION_INTERVAL_S),
            "options": {"queue": "maintenance", "expires": float(RETENTION_INTERVAL_S)},
        }
    }
    if RETENTION_INTERVAL_S
    else {}
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
