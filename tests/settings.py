"""Test settings: production settings, with test keys and plain-HTTP test client convenience."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)
os.environ.setdefault("AUDIT_HMAC_KEY", "test-audit-key-" + "y" * 40)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

from project.settings import *  # noqa: F403

# Tests use Django's test client over plain HTTP; tests of the redirect switch it back on.
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}

# One test database per pytest process, so parallel runs (two checkouts, two helpers) never collide.
_db = DATABASES["default"]  # noqa: F405
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    _db["TEST"] = {"NAME": f"test_{_db['NAME']}_{os.getpid()}"}

# WhiteNoise warns on every request when STATIC_ROOT does not exist yet (no collectstatic in tests).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
