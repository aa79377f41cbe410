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
from uploads.quota import lock_uploader, quota_refusal
from uploads.rehearsal import rehearses

logger = logging.getLogger("portcullis.uploads")

ACCEPTED = "accepted"
# Event codes of what happens to a stored upload later (the rest are ERROR_STATUS codes).
DELETED = "deleted"  # by its owner or an admin
EXPIRED = "expired"  # past its policy's retention (uploads_purge_expired)
FILE_MISSING = "file_missing"  # its row outlived its file (uploads_reconcile --fix)
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
    scan: str = ""  # a uploads.models.ScanStatus
    scan_signature: str = ""


@dataclass
class AcceptedFile:
    """A file that passed every check, and the bytes to keep (re-encoded images differ)."""

    facts: FileFacts  # as received
    original_name: str  # sanitized
    content: IO[bytes]
    size: int  # of `content`, measured before storing (some storages close what they store)
    sha256: str
    reencoded: bool
    would_refuse: str = ""  # under a report-only policy: the refusal it rehearsed


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
    *, policy_slug: str, code: str, uploader: Uploader, facts: FileFacts, would_refuse: str = ""
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
        would_refuse_code=would_refuse,
        scan=facts.scan,
        scan_signature=facts.scan_signature[:200],
    )
    transaction.on_commit(lambda: _log_decision(event))
    return event


def _log_decision(event: UploadEvent) -> None:
    logger.info(
        "upload decision code=%s%s policy=%s user=%s size=%s type=%s sha256=%s scan=%s%s",
        event.code,
        f" would_refuse={event.would_refuse_code}" if event.would_refuse_code else "",
        event.policy_slug,
        event.user_id or "-",
        event.size_bytes if event.size_bytes is not None else "-",
        event.content_type or "-",
        event.sha256 or "-",
        event.scan or "-",
        f" signature={event.scan_signature!r}" if event.scan_signature else "",
    )


def uploads_create(
    *,
    policy: UploadPolicy,
    policy_audit_seq: int | None,
    files: Iterable[AcceptedFile],
    uploader: Uploader,
) -> list[Upload]:
    """Store the files, then their rows and events in one transaction; on any failure (the
    user's quota full, say) remove the stored files again. Must not run inside another
    transaction (its commit decides)."""
    files = list(files)
    stored: list[str] = []
    try:
        for accepted in files:
            stored.append(random_stored_name())  # known before saving, to clean up a partial file
            stored[-1] = storage().save(stored[-1], _as_file(accepted.content))
        with transaction.atomic(durable=True):
            _check_quota(policy, uploader.user, files)
            uploads = [
                _create_row(policy, policy_audit_seq, accepted, name, uploader)
                for accepted, name in zip(files, stored, strict=True)
            ]
    except BaseException:
        for name in stored:
            _delete_quietly(name)
        raise
    return uploads


def _check_quota(policy: UploadPolicy, user: Any, files: list[AcceptedFile]) -> None:
    """Under the user's lock, so parallel uploads cannot both take the last free place."""
    lock_uploader(user)
    refusal = quota_refusal(policy, user, [accepted.size for accepted in files])
    if refusal is None:
        return
    if not rehearses(policy, refusal.code):
        raise refusal
    for accepted in files:
        accepted.would_refuse = accepted.would_refuse or refusal.code


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
    record_decision(
        policy_slug=policy.slug,
        code=ACCEPTED,
        uploader=uploader,
        facts=accepted.facts,
        would_refuse=accepted.would_refuse,
    )
    return upload


def _delete_quietly(name: str) -> None:
    try:
        storage().delete(name)
    except Exception:  # the failure that brought us here matters more
        logger.exception("could not remove stored file %s after a failed upload", name)


def upload_delete(*, upload: Upload, uploader: Uploader | None = None) -> None:
    """Mark the upload deleted, and remove its file once that is committed."""
    with transaction.atomic():
        upload.status = UploadStatus.DELETED
        upload.save(update_fields=["status"])
        record_removal(upload=upload, code=DELETED, uploader=uploader)
        transaction.on_commit(lambda: _delete_quietly(upload.stored_name))


def record_removal(*, upload: Upload, code: str, uploader: Uploader | None = None) -> UploadEvent:
    """The event of a stored upload going away (`code`: DELETED, EXPIRED or FILE_MISSING);
    without an uploader (a management command) it is the system's doing."""
    facts = FileFacts(
        filename=upload.original_name,
        size=upload.size_bytes,
        sha256=upload.sha256,
        content_type=upload.content_type,
    )
    return record_decision(
        policy_slug=upload.policy.slug,
        code=code,
        uploader=uploader or Uploader(user=None, client_ip=None, request_id=""),
        facts=facts,
    )
