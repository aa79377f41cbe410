"""Writes of uploads: store accepted files with their rows, record every decision, delete.

Files are written before the database commit and removed when it fails, so a row never points
at nothing and no file outlives a failed upload.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction

from policies.models import UploadPolicy
from uploads.models import Upload, UploadEvent, UploadStatus

logger = logging.getLogger("portcullis.uploads")

ACCEPTED = "accepted"
HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Uploader:
    """Who is uploading, from where: what every decision records."""

    user: Any  # the signed-in user, or None before authentication
    client_ip: str | None
    request_id: str


@dataclass
class FileFacts:
    """What is known about a file when a decision is made (all empty before it arrived)."""

    filename: str = ""
    size: int | None = None
    sha256: str = ""
    content_type: str = ""


@dataclass
class AcceptedFile:
    """A file that passed every check, and the bytes to keep (re-encoded images differ)."""

    facts: FileFacts  # as received
    original_name: str  # sanitized
    content: IO[bytes]
    size: int  # of `content`, measured before storing (some storages close what they store)
    sha256: str
    reencoded: bool


def storage():
    return storages["default"]


def random_stored_name() -> str:
    """Unguessable, and unrelated to anything the client sent."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def size_and_sha256(content: IO[bytes]) -> tuple[int, str]:
    content.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := content.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    content.seek(0)
    return size, digest.hexdigest()


def record_decision(
    *, policy_slug: str, code: str, uploader: Uploader, facts: FileFacts
) -> UploadEvent:
    """One event and one log line per decision (never the bytes); inside a transaction, the
    line is written once it commits."""
    user = uploader.user if getattr(uploader.user, "is_authenticated", False) else None
    event = UploadEvent.objects.create(
        policy_slug=policy_slug[:50],
        code=code,
        user=user,
        filename=facts.filename[:255],
        size_bytes=facts.size,
        content_type=facts.content_type[:100],
        sha256=facts.sha256,
        client_ip=uploader.client_ip,
        request_id=uploader.request_id[:128],
    )
    transaction.on_commit(lambda: _log_decision(event))
    return event


def _log_decision(event: UploadEvent) -> None:
    logger.info(
        "upload decision code=%s policy=%s user=%s size=%s type=%s sha256=%s",
        event.code,
        event.policy_slug,
        event.user_id or "-",
        event.size_bytes if event.size_bytes is not None else "-",
        event.content_type or "-",
        event.sha256 or "-",
    )


def uploads_create(
    *,
    policy: UploadPolicy,
    policy_audit_seq: int | None,
    files: Iterable[AcceptedFile],
    uploader: Uploader,
) -> list[Upload]:
    """Store the files, then their rows and events in one transaction; on any failure, remove
    the stored files again. Must not run inside another transaction (its commit decides)."""
    files = list(files)
    stored: list[str] = []
    try:
        for accepted in files:
            stored.append(random_stored_name())  # known before saving, to clean up a partial file
            stored[-1] = storage().save(stored[-1], _as_file(accepted.content))
        with transaction.atomic(durable=True):
            uploads = [
                _create_row(policy, policy_audit_seq, accepted, name, uploader)
                for accepted, name in zip(files, stored, strict=True)
            ]
    except BaseException:
        for name in stored:
            _delete_quietly(name)
        raise
    return uploads


def _as_file(content: IO[bytes]) -> File:
    """Uploaded files go as they are: a temporary one is then moved into place, not copied."""
    return content if isinstance(content, File) else File(content)


def _create_row(
    policy: UploadPolicy,
    policy_audit_seq: int | None,
    accepted: AcceptedFile,
    stored_name: str,
    uploader: Uploader,
) -> Upload:
    upload = Upload.objects.create(
        owner=uploader.user,
        policy=policy,
        policy_audit_seq=policy_audit_seq,
        stored_name=stored_name,
        original_name=accepted.original_name,
        size_bytes=accepted.size,
        sha256=accepted.sha256,
        content_type=accepted.facts.content_type,
        reencoded=accepted.reencoded,
    )
    record_decision(policy_slug=policy.slug, code=ACCEPTED, uploader=uploader, facts=accepted.facts)
    return upload


def _delete_quietly(name: str) -> None:
    try:
        storage().delete(name)
    except Exception:  # the failure that brought us here matters more
        logger.exception("could not remove stored file %s after a failed upload", name)


def upload_delete(*, upload: Upload) -> None:
    """Mark the upload deleted, and remove its file once that is committed."""
    with transaction.atomic():
        upload.status = UploadStatus.DELETED
        upload.save(update_fields=["status"])
        transaction.on_commit(lambda: _delete_quietly(upload.stored_name))
