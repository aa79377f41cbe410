"""Portcullis settings: every value that differs between machines comes from the environment."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-portcullis-local-development-only-never-in-production"  # noqa: S105

# The audit chain's key lives outside the database; only a debug run may derive it.
AUDIT_HMAC_KEY = env_str("AUDIT_HMAC_KEY")
if not AUDIT_HMAC_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "AUDIT_HMAC_KEY is required when DJANGO_DEBUG is off. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    AUDIT_HMAC_KEY = hmac.new(SECRET_KEY.encode(), b"portcullis-audit", hashlib.sha256).hexdigest()
AUDIT_HMAC_OLD_KEYS = env_list("AUDIT_HMAC_OLD_KEYS")

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
if not ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is required when DJANGO_DEBUG is off: the comma-separated host "
        "names the site answers to, e.g. DJANGO_ALLOWED_HOSTS=uploads.example.com"
    )

INSTALLED_APPS = [
    "policies",
    "uploads",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
]

MIDDLEWARE = [
    "project.middleware.RequestIdMiddleware",
    # Outside SecurityMiddleware and XFrameOptionsMiddleware, so the header rules win over them.
    "policies.middleware.RuleHeadersMiddleware",
    # Directly inside it, outside everything that can answer early (CommonMiddleware's APPEND_SLASH
    # redirect, the 400 for a disallowed host, WhiteNoise's files), so every response gets its CSP.
    "policies.middleware.RuleCSPMiddleware",
    # Before host validation and the HTTPS redirect, so a load balancer probing by IP gets its 200.
    "project.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "project.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

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
                "csp.context_processors.nonce",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'portcullis.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead of failing
    # mid-transaction; it also serializes audit-chain appends on SQLite.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The shared cache: Redis when configured, else the database; never per-process memory.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "portcullis_cache",
            # The default MAX_ENTRIES (300) culls live entries: throttle counters and the
            # header-rules stamp would be evicted long before they expire.
            "OPTIONS": {"MAX_ENTRIES": 100_000, "CULL_FREQUENCY": 10},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = None

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Files: uploads live outside every URL-served folder and reach users only through views.
UPLOAD_ROOT = Path(env_str("UPLOAD_ROOT") or VAR_DIR / "uploads").resolve()
# Uploads stream into this folder while they are checked; beside UPLOAD_ROOT, storing is a rename.
FILE_UPLOAD_TEMP_DIR = str(Path(env_str("UPLOAD_TEMP_DIR") or VAR_DIR / "upload-tmp").resolve())
# Images and PDFs are parsed in a child process with these limits (uploads.sandbox); past them the
# upload is refused. Its wall-clock timeout is twice the CPU seconds plus one.
UPLOAD_INSPECT_CPU_SECONDS = env_int("UPLOAD_INSPECT_CPU_SECONDS", 10, minimum=1)
UPLOAD_INSPECT_MEMORY_BYTES = env_int(
    "UPLOAD_INSPECT_MEMORY_BYTES", 512 * 1024 * 1024, minimum=64 * 1024 * 1024
)
# Malware scanning with clamd (uploads.scanner): a unix socket, or a host and port. Files larger
# than CLAMD_STREAM_MAX_BYTES (keep it at most clamd's StreamMaxLength, 25 MiB by default) are
# not sent: the upload is refused under a "required" scan, accepted unscanned under "on".
CLAMD_SOCKET = env_str("CLAMD_SOCKET")
CLAMD_HOST = env_str("CLAMD_HOST")
CLAMD_PORT = env_int("CLAMD_PORT", 3310, minimum=1)
if CLAMD_PORT > 65_535:
    raise ImproperlyConfigured(f"CLAMD_PORT must be a TCP port (1 to 65535); got {CLAMD_PORT}.")
CLAMD_TIMEOUT_SECONDS = env_int("CLAMD_TIMEOUT_SECONDS", 30, minimum=1)
CLAMD_STREAM_MAX_BYTES = env_int("CLAMD_STREAM_MAX_BYTES", 25 * 1024 * 1024, minimum=1)
# How long an Idempotency-Key (and a form's one-time token) is remembered after its upload.
UPLOAD_IDEMPOTENCY_TTL_SECONDS = env_int("UPLOAD_IDEMPOTENCY_TTL_SECONDS", 86_400, minimum=60)
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(UPLOAD_ROOT),
            "base_url": None,
            "file_permissions_mode": 0o640,
            "directory_permissions_mode": 0o750,
        },
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# HTTPS and cookies: strict unless debugging on a laptop.
SECURE_SSL_REDIRECT = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "project.views.csrf_failure"

# Behind a proxy, trust its X-Forwarded-Proto and take the client from X-Forwarded-For.
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1, minimum=1)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# CSP violation reports (/csp-report/): distinct rows kept (past it, one overflow row counts the
# rest), and report requests accepted per client address a minute.
CSP_REPORTS_MAX_ROWS = env_int("CSP_REPORTS_MAX_ROWS", 10_000, minimum=1)
CSP_REPORTS_PER_MINUTE = env_int("CSP_REPORTS_PER_MINUTE", 60, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes an anonymous call answer 401, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    # Request bodies are JSON; uploads are read by Django's multipart parser (uploads.receive).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "project.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Requests per scope (uploads.throttles): uploads per signed-in user and per client address
    # (the API and the form alike), policy and rule writes per user, report reads per user.
    # "<count>/<second|minute|hour|day>".
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env_rate("UPLOAD_THROTTLE_USER_RATE", "60/minute"),
        "uploads_address": env_rate("UPLOAD_THROTTLE_ADDRESS_RATE", "120/minute"),
        "policy_writes": env_rate("API_THROTTLE_POLICY_WRITES_RATE", "60/minute"),
        "reports": env_rate("API_THROTTLE_REPORTS_RATE", "240/minute"),
    },
    "DEFAULT_PAGINATION_CLASS": "project.api.Pages",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# The API's OpenAPI 3 description (/api/v1/schema/) and its docs (/api/v1/docs/), whose Swagger UI
# files come from drf-spectacular-sidecar: served from our static files, no CDN, no inline script.
SPECTACULAR_SETTINGS = {
    "TITLE": "Portcullis API",
    "DESCRIPTION": (
        "Upload files under database-kept policies; read and change upload policies and "
        "security-header rules, every change audited. Errors are JSON "
        '`{"code": "<snake_case>", "detail": "<sentence>"}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "project.schema.close_components",
    ],
    # Two models have a `scan` field with different choices: name each set once.
    "ENUM_NAME_OVERRIDES": {
        "UploadPolicyScanEnum": "policies.models.ScanMode",
        "UploadEventScanEnum": "uploads.models.ScanStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "project.logging.RequestIdFilter"},
        "redact": {"()": "project.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id", "redact"],
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
