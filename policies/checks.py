"""System checks for the audit log's key."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

MIN_KEY_LENGTH = 32


@register(Tags.security)
def check_audit_keys(app_configs, **kwargs) -> list:
    """policies.E001: a short audit key; policies.W001: the audit key equals SECRET_KEY."""
    messages = []
    if len(settings.AUDIT_HMAC_KEY) < MIN_KEY_LENGTH:
        messages.append(
            Error(
                f"AUDIT_HMAC_KEY is shorter than {MIN_KEY_LENGTH} characters.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
                id="policies.E001",
            )
        )
    if settings.AUDIT_HMAC_KEY == settings.SECRET_KEY:
        messages.append(
            Warning(
                "AUDIT_HMAC_KEY is the same as DJANGO_SECRET_KEY.",
                hint="Use a separate key, so rotating one does not invalidate the other.",
                id="policies.W001",
            )
        )
    return messages
