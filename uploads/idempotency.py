"""Retry-safe uploads: the `Idempotency-Key` header (IETF httpapi idempotency-key draft) and the
upload form's one-time token, which is the same thing sent as the `idempotency_key` field.

A key is scoped to its user and remembered in the shared cache (Redis, or the database cache;
never one process's memory):
- first use: claimed as running, with the payload's fingerprint (policy and each file's size
  and SHA-256, known once the body has arrived);
- the upload stored: the answer is kept for UPLOAD_IDEMPOTENCY_TTL_SECONDS, and a retry with the
  same payload gets it again without a second upload;
- the upload refused, or the request failed: the key is let go, so the client may retry with it;
- same key, other payload: 422 `idempotency_conflict`; a retry while the first request still
  runs: 409 `idempotency_in_progress`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest

from project.errors import PortcullisError, UploadRejected

HEADER = "HTTP_IDEMPOTENCY_KEY"
FORM_FIELD = "idempotency_key"
MAX_KEY_LENGTH = 255
# How long a claimed key blocks retries if its request dies without letting go: longer than
# any upload's checks take once its body has arrived (sandbox and scanner timeouts).
RUNNING_SECONDS = 600
# The header's value: 1 to 255 printable ASCII characters, in double quotes (a structured-field
# string, as the draft says) or bare without surrounding spaces. The API description shows it.
KEY_HEADER_PATTERN = r'^(?:"([ -~]{1,255})"|([!-~](?:[ -~]{0,253}[!-~])?))$'


@dataclass(frozen=True)
class Answer:
    """What a stored upload answered; `replayed` when it is a retry's copy of it."""

    status: int
    body: Any
    replayed: bool = False


def key_from_header(request: HttpRequest) -> str | None:
    """The Idempotency-Key header's value (a structured-field string, quotes optional)."""
    raw = request.META.get(HEADER)
    if raw is None:
        return None
    if match := re.fullmatch(KEY_HEADER_PATTERN, raw):
        return match[1] or match[2]
    raise _malformed("The Idempotency-Key header")


def key_from_form(request: HttpRequest) -> str | None:
    """The form's one-time token (read after the body has been parsed)."""
    value = request.POST.get(FORM_FIELD)
    return None if value is None else _valid(value, f'The "{FORM_FIELD}" field')


def _valid(value: str, what: str) -> str:
    if 0 < len(value) <= MAX_KEY_LENGTH and all(" " <= ch <= "~" for ch in value):
        return value
    raise _malformed(what)


def _malformed(what: str) -> PortcullisError:
    return PortcullisError(
        "bad_request",
        f"{what} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, "
        'for example a UUID in quotes: "8e03978e-40d5-43e8-bc93-6894a57f9324".',
    )


def fingerprint(policy_slug: str, files: list[tuple[int, str]]) -> str:
    """The payload a key stands for: the policy and each file's (size, sha256), in order."""
    canonical = json.dumps([policy_slug, files], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotentUpload:
    """One key of one user, from claim to completion (or release)."""

    def __init__(self, user, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.cache_key = f"portcullis:idempotency:{user.pk}:{digest}"
        self.claimed = False
        self.fingerprint = ""

    def claim(self, fingerprint: str) -> Answer | None:
        """Claim the key for this payload; or the earlier answer to replay; or refuse."""
        self.fingerprint = fingerprint
        running = {"state": "running", "fingerprint": fingerprint}
        for _ in range(2):  # a second try, if the earlier record expired between add and get
            if cache.add(self.cache_key, running, timeout=RUNNING_SECONDS):
                self.claimed = True
                return None
            earlier = cache.get(self.cache_key)
            if earlier is not None:
                return _replay_of(earlier, fingerprint)
        raise UploadRejected("idempotency_in_progress", _IN_PROGRESS)

    def complete(self, answer: Answer) -> None:
        """Remember the answer for retries (the claim holds until this runs)."""
        record = {
            "state": "done",
            "fingerprint": self.fingerprint,
            "status": answer.status,
            "body": json.loads(json.dumps(answer.body, cls=DjangoJSONEncoder)),
        }
        cache.set(self.cache_key, record, timeout=settings.UPLOAD_IDEMPOTENCY_TTL_SECONDS)
        self.claimed = False

    def hold(self) -> None:
        """Keep the key claimed for as long as an answer would be kept: the upload is stored but
        its answer was lost, so a retry gets 409, never a second upload."""
        running = {"state": "running", "fingerprint": self.fingerprint}
        cache.set(self.cache_key, running, timeout=settings.UPLOAD_IDEMPOTENCY_TTL_SECONDS)
        self.claimed = False

    def release(self) -> None:
        """Let the key go after a refusal or a failure (only if this request claimed it)."""
        if self.claimed:
            cache.delete(self.cache_key)
            self.claimed = False


_IN_PROGRESS = (
    "An upload with this Idempotency-Key is still being processed; "
    "wait for its answer before retrying."
)


def _replay_of(earlier: dict[str, Any], fingerprint: str) -> Answer:
    if earlier.get("fingerprint") != fingerprint:
        raise UploadRejected(
            "idempotency_conflict",
            "This Idempotency-Key was already used for a different upload; "
            "use a new key for a new upload.",
        )
    if earlier.get("state") != "done":
        raise UploadRejected("idempotency_in_progress", _IN_PROGRESS)
    return Answer(status=earlier["status"], body=earlier["body"], replayed=True)
