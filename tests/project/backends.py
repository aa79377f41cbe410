"""An authentication backend that exists only to make a login attempt log its credentials."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class CredentialQuotingBackend:
    """Fails as a careless backend does: with the credentials it was given in the message."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        raise RuntimeError(f"directory lookup failed for {credentials}")

    def get_user(self, user_id: int) -> None:
        return None
