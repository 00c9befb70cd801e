"""Metis settings: one module, configured from the environment.

Secrets that are not given by the environment are generated once into
METIS_HOME (never into the repository), so a fresh machine needs no setup.
"""

from __future__ import annotations

import os
import secrets
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


METIS_HOME = Path(os.environ.get("METIS_HOME") or Path.home() / ".metis").expanduser()


def envsecret(name: str, make: callable) -> str:  # type: ignore[valid-type]
    """The secret from the environment, else from METIS_HOME/secrets/<name>, made on first use."""
    if os.environ.get(name):
        return os.environ[name]
    path = METIS_HOME / "secrets" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise unusable_home(exc) from None
    value = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: when two processes start at once, the first one's secret wins.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    except OSError as exc:
        raise unusable_home(exc) from None
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def unusable_home(exc: OSError) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"METIS_HOME ({METIS_HOME}) must be a directory Metis can write: "
        f"{exc.strerror}: {exc.filename}"
    )


SECRET_KEY = envsecret("METIS_SECRET_KEY", lambda: secrets.token_urlsafe(50))
# Dedicated to gateway tokens, so rotating SECRET_KEY does not revoke every key.
METIS_KEY_HASH_SECRET = envsecret("METIS_KEY_HASH_SECRET", lambda: secrets.token_urlsafe(32))
# Fernet keys for provider credentials at rest; comma-separated, newest first (MultiFernet).
METIS_ENCRYPTION_KEYS = envsecret("METIS_ENCRYPTION_KEY", lambda: Fernet.generate_key().decode())

DEBUG = envbool("METIS_DEBUG", False)

# Loopback names only: a web page cannot read the local dashboard via DNS rebinding.
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("METIS_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if h.strip()
]
# Local mode: analytics and the dashboard answer without login. Set by `metis serve` only
# when it binds loopback and METIS_REQUIRE_LOGIN is unset; off everywhere else. Even then
# only for connections analytics.local_mode accepts (never through a proxy).
METIS_REQUIRE_LOGIN = envbool("METIS_REQUIRE_LOGIN", False)
METIS_LOCAL_MODE = envbool("METIS_LOCAL_MODE", False) and not METIS_REQUIRE_LOGIN
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("METIS_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]


def envheader(name: str) -> tuple[str, str] | None:
    """`Header-Name: value` as Django's (META key, value) pair, e.g. for SECURE_PROXY_SSL_HEADER."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    header, sep, value = text.partition(":")
    if not sep or not header.strip() or not value.strip() or " " in header.strip():
        raise ImproperlyConfigured(
            f"{name} must look like 'X-Forwarded-Proto: https', got {text!r}"
        )
    return "HTTP_" + header.strip().upper().replace("-", "_"), value.strip()


# Behind a TLS-terminating proxy: the header it sets on https requests. Requests carrying it
# count as https, so the session and CSRF cookies they get are Secure (identity.cookies).
SECURE_PROXY_SSL_HEADER = envheader("METIS_SECURE_PROXY_SSL_HEADER")
# How many proxies in front append to X-Forwarded-For: the client address for sign-in
# throttling is read that many entries from the right. 0: the TCP peer's address.
METIS_PROXY_COUNT = envint("METIS_PROXY_COUNT", 0)

# Which process this is: the gateway loads a minimal stack (no sessions, CSRF or auth
# middleware); `metis serve` loads the admin and dashboard.
METIS_ROLE = os.environ.get("METIS_ROLE", "serve")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "identity",
    "analytics",
    "gateway",
    "agent",
    "reconcile",
]

if METIS_ROLE == "gateway":
    MIDDLEWARE: list[str] = []
    ROOT_URLCONF = "metis_site.urls_gateway"
else:
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "identity.cookies.SecureCookiesMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "axes.middleware.AxesMiddleware",
    ]
    ROOT_URLCONF = "metis_site.urls"

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
            ],
        },
    },
]

ASGI_APPLICATION = "metis_site.asgi.application"
WSGI_APPLICATION = None

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{METIS_HOME / 'metis.db'}"
_scheme, _, _ = DATABASE_URL.partition("://")
if _scheme not in ("sqlite", "postgres", "postgresql"):
    # Only the scheme is echoed: the rest of the URL may hold a password.
    raise ImproperlyConfigured(
        "DATABASE_URL must be sqlite:///PATH or postgres://USER:PASSWORD@HOST:PORT/NAME, not "
        + (f"a {_scheme}:// URL" if "://" in DATABASE_URL else "a value without a scheme")
    )
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
except ValueError as exc:  # a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Metis can use: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Owner-only, like the secrets: SQLite gives its -wal and -shm files the same mode.
    database_file = Path(DATABASES["default"]["NAME"])
    try:
        METIS_HOME.mkdir(parents=True, exist_ok=True)
        if not database_file.exists() and str(database_file) != ":memory:":
            os.close(os.open(database_file, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise unusable_home(exc) from None
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Gateway, admin and CLI share one file: WAL lets readers run beside the writer,
        # IMMEDIATE takes the write lock up front (no upgrade deadlocks), and the timeout
        # waits out a brief lock instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": envint("METIS_SQLITE_BUSY_TIMEOUT", 20),
    }
    # A file, not memory, so the gateway's threads and the tests share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(METIS_HOME / "test.db")}

AUTH_USER_MODEL = "identity.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out account or address is refused before its password is checked.
    "identity.signin.ThrottledBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Failed sign-ins (/login/ and /admin/login/), counted in the database so every
# `metis serve` process sharing it sees the same count (django-axes).
AXES_FAILURE_LIMIT = envint("METIS_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=envint("METIS_LOGIN_LOCKOUT_MINUTES", 15))
# Per account and, separately, per address: either one reaching the limit locks.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "identity.signin.client_address"
AXES_LOCKOUT_CALLABLE = "identity.signin.locked_out"
AXES_VERBOSE = False

# Single sign-on with OpenID Connect; on when an issuer is set (identity/oidc.py).
METIS_OIDC_ISSUER = os.environ.get("METIS_OIDC_ISSUER", "").strip().rstrip("/")
METIS_OIDC_CLIENT_ID = os.environ.get("METIS_OIDC_CLIENT_ID", "").strip()
METIS_OIDC_CLIENT_SECRET = os.environ.get("METIS_OIDC_CLIENT_SECRET", "")
METIS_OIDC_NAME = os.environ.get("METIS_OIDC_NAME", "").strip() or "single sign-on"
METIS_OIDC_SCOPES = os.environ.get("METIS_OIDC_SCOPES", "").strip() or "openid email profile"
METIS_OIDC_TEAM_CLAIM = os.environ.get("METIS_OIDC_TEAM_CLAIM", "").strip()
METIS_OIDC_CREATE_USERS = envbool("METIS_OIDC_CREATE_USERS", False)
if METIS_OIDC_ISSUER and not (METIS_OIDC_CLIENT_ID and METIS_OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "METIS_OIDC_ISSUER is set: METIS_OIDC_CLIENT_ID and METIS_OIDC_CLIENT_SECRET are needed too"
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("METIS_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = None
# Serve app static files straight from the packages: no collectstatic step for newcomers.
WHITENOISE_USE_FINDERS = True
# WhiteNoise serves files with sync iterators; under ASGI Django warns about each one.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous")

# Upstream providers. The client-side ANTHROPIC_BASE_URL / OPENAI_BASE_URL are never read
# here: a user who exported them for Claude Code must not get a loop.
METIS_ANTHROPIC_API_KEY = os.environ.get("METIS_ANTHROPIC_API_KEY", "")
METIS_ANTHROPIC_BASE_URL = os.environ.get("METIS_ANTHROPIC_BASE_URL", "https://api.anthropic.com")
METIS_OPENAI_API_KEY = os.environ.get("METIS_OPENAI_API_KEY", "")
METIS_OPENAI_BASE_URL = os.environ.get("METIS_OPENAI_BASE_URL", "https://api.openai.com")
# Organisation admin keys: reconcile/ reads the providers' usage and cost reports with them.
METIS_ANTHROPIC_ADMIN_KEY = os.environ.get("METIS_ANTHROPIC_ADMIN_KEY", "")
METIS_OPENAI_ADMIN_KEY = os.environ.get("METIS_OPENAI_ADMIN_KEY", "")
# A day whose cost differs from the provider's by more than this (%) alerts (reconciliation.drift).
METIS_RECONCILE_DRIFT_PERCENT = envfloat("METIS_RECONCILE_DRIFT_PERCENT", 1.0)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
METIS_LOG_LEVEL = os.environ.get("METIS_LOG_LEVEL", "").strip().upper() or "INFO"
if METIS_LOG_LEVEL not in LOG_LEVELS:  # logging's own error would be a traceback
    raise ImproperlyConfigured(
        f"METIS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {METIS_LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": METIS_LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Gateway knobs.
# One line per call on stderr (gateway/access_log.py): text, json or off.
METIS_ACCESS_LOG = os.environ.get("METIS_ACCESS_LOG", "").strip().lower() or "text"
if METIS_ACCESS_LOG not in ("text", "json", "off"):
    raise ImproperlyConfigured(
        f"METIS_ACCESS_LOG must be 'text', 'json' or 'off', got {METIS_ACCESS_LOG!r}"
    )
METIS_KEY_CACHE_SECONDS = envfloat("METIS_KEY_CACHE_SECONDS", 1.0)
METIS_UPSTREAM_RETRIES = envint("METIS_UPSTREAM_RETRIES", 2)
METIS_UPSTREAM_RETRY_SECONDS = envfloat("METIS_UPSTREAM_RETRY_SECONDS", 30.0)
METIS_UPSTREAM_CONNECT_TIMEOUT = envfloat("METIS_UPSTREAM_CONNECT_TIMEOUT", 10.0)
METIS_UPSTREAM_READ_TIMEOUT = envfloat("METIS_UPSTREAM_READ_TIMEOUT", 600.0)
# Budgets shared by several gateway processes live in Redis; without it, in each process.
REDIS_URL = os.environ.get("REDIS_URL", "")
METIS_REDIS_FAILURE = os.environ.get("METIS_REDIS_FAILURE", "closed")
if METIS_REDIS_FAILURE not in ("closed", "open"):
    raise ImproperlyConfigured("METIS_REDIS_FAILURE must be 'closed' or 'open'")
# A hung Redis costs each budget check this long, until the breaker stops asking it.
METIS_REDIS_TIMEOUT = envfloat("METIS_REDIS_TIMEOUT", 2.0)
METIS_REDIS_BREAKER_FAILURES = max(1, envint("METIS_REDIS_BREAKER_FAILURES", 3))
METIS_REDIS_BREAKER_SECONDS = envfloat("METIS_REDIS_BREAKER_SECONDS", 10.0)
# How long a call's budget hold outlives a process that died mid-call.
METIS_QUOTA_HOLD_SECONDS = envint("METIS_QUOTA_HOLD_SECONDS", 1200)
# The output allowance reserved against a budget when a request sets no max tokens.
METIS_QUOTA_DEFAULT_MAX_TOKENS = envint("METIS_QUOTA_DEFAULT_MAX_TOKENS", 8192)
# The largest request body the gateway reads; 0 (the default): each shape's provider limit,
# Anthropic 32 MiB, OpenAI 64 MiB (gateway/intake.py). `metis serve` takes at most 32 MiB.
METIS_MAX_BODY_BYTES = envint("METIS_MAX_BODY_BYTES", 0)
# The gateway's handler enforces its own limits, before it reads a body.
DATA_UPLOAD_MAX_MEMORY_SIZE = None if METIS_ROLE == "gateway" else 32 * 1024 * 1024
# Slow clients (slowloris): the request line and headers must arrive within the first, the
# body within the second, or the connection is closed (metis_site/server.py).
METIS_CLIENT_HEADER_TIMEOUT = envfloat("METIS_CLIENT_HEADER_TIMEOUT", 10.0)
METIS_CLIENT_BODY_TIMEOUT = envfloat("METIS_CLIENT_BODY_TIMEOUT", 60.0)
# GET /metrics: with a token, for `Authorization: Bearer TOKEN` only; without, for loopback
# peers only, unless METIS_METRICS_OPEN is set.
METIS_METRICS_TOKEN = os.environ.get("METIS_METRICS_TOKEN", "")
METIS_METRICS_OPEN = envbool("METIS_METRICS_OPEN", False)
METIS_EVENT_SHUTDOWN_SECONDS = envfloat("METIS_EVENT_SHUTDOWN_SECONDS", 30.0)
# `metis gateway` writes events from a process of its own, fed by the call journal
# (gateway/writer_process.py); off, each gateway process writes its own from a thread.
METIS_EVENT_WRITER_PROCESS = envbool("METIS_EVENT_WRITER_PROCESS", True)
# Raw events older than this many days are pruned by `metis serve` once a day (and by
# `metis manage prune`); 0, the default, keeps them forever. Calls and rollups stay.
METIS_EVENT_RETENTION_DAYS = envint("METIS_EVENT_RETENTION_DAYS", 0)
if METIS_EVENT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("METIS_EVENT_RETENTION_DAYS must be 0 (keep forever) or more days")
# Metis-API-Version: versions still served but deprecated, version -> Sunset (an HTTP-date).
# Set in code by the release that ships a new major version, not by operators
# (docs/specs/api-versioning.md).
METIS_API_DEPRECATED: dict[str, str] = {}
