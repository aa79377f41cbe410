"""Housekeeping of the upload folders and rows, run from cron by management commands.

A worker killed mid-upload (gunicorn's SIGKILL after GUNICORN_TIMEOUT, the OOM killer) never runs
the pipeline's clean-up, so its temporary file stays in FILE_UPLOAD_TEMP_DIR.
`purge_stale_temp_files()` removes such files once they are old enough that no live upload can
still be writing them. `purge_expired_uploads()` removes uploads past their policy's retention;
`reconcile_storage()` finds (and fixes) files without rows and rows without files.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.utils import timezone

from policies.models import UploadPolicy
from uploads import services
from uploads.models import Upload, UploadStatus

logger = logging.getLogger("portcullis.uploads")


@dataclass(frozen=True)
class PurgeResult:
    removed: int
    removed_bytes: int


def purge_stale_temp_files(*, older_than: timedelta, now: float | None = None) -> PurgeResult:
    """Delete the regular files directly in FILE_UPLOAD_TEMP_DIR last modified before
    `older_than` ago. Symbolic links, folders and whatever is inside folders are left alone; every
    look-up and removal goes through the folder's descriptor, so nothing outside it is touched
    even if a link or a rename appears meanwhile."""
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    removed = removed_bytes = 0
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
    folder = os.open(settings.FILE_UPLOAD_TEMP_DIR, flags)
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
                    continue
                os.unlink(name, dir_fd=folder)  # unlink never follows a link
            except FileNotFoundError:  # its upload finished and cleaned up meanwhile
                continue
            removed += 1
            removed_bytes += info.st_size
    finally:
        os.close(folder)
    return PurgeResult(removed=removed, removed_bytes=removed_bytes)


# Retention ---------------------------------------------------------------------------------------

PURGE_BATCH = 500


@dataclass(frozen=True)
class ExpiredUpload:
    """An upload past its policy's retention (what --dry-run lists)."""

    id: uuid.UUID
    policy_slug: str
    original_name: str
    stored_name: str
    size_bytes: int
    created_at: datetime
    already_deleted: bool  # its owner deleted it before: the file is gone, only the row is left


@dataclass(frozen=True)
class PolicyExpiry:
    slug: str
    retention_days: int
    expired: int  # stored uploads removed (or that would be): one "expired" event each
    expired_bytes: int
    cleared: int  # rows of uploads deleted earlier, removed without a second event


@dataclass(frozen=True)
class ExpiryResult:
    dry_run: bool
    policies: list[PolicyExpiry]
    uploads: list[ExpiredUpload]  # with dry_run: everything past retention, by policy and age
    undeleted_files: list[str]  # stored names whose file could not be removed (rows are gone)

    @property
    def expired(self) -> int:
        return sum(p.expired for p in self.policies)

    @property
    def expired_bytes(self) -> int:
        return sum(p.expired_bytes for p in self.policies)

    @property
    def cleared(self) -> int:
        return sum(p.cleared for p in self.policies)


def purge_expired_uploads(
    *, dry_run: bool = False, now: datetime | None = None, batch_size: int = PURGE_BATCH
) -> ExpiryResult:
    """Remove the uploads created before their policy's retention (`retention_days`) ran out.

    Per batch, one transaction records an "expired" event for each stored upload and deletes the
    rows; the files go once it has committed, so a failure never leaves a row without its file (a
    file that cannot be removed is logged and returned; `reconcile_storage` finds it later). Rows
    of uploads deleted earlier go too, without a second event: their "deleted" event already
    closed their story. Must not run inside another transaction."""
    now = now or timezone.now()
    policies: list[PolicyExpiry] = []
    listed: list[ExpiredUpload] = []
    undeleted: list[str] = []
    for policy in UploadPolicy.objects.filter(retention_days__isnull=False).order_by("slug"):
        cutoff = now - timedelta(days=policy.retention_days)
        expired = Upload.objects.filter(policy=policy, created_at__lt=cutoff).select_related(
            "policy"
        )
        gone: list[ExpiredUpload] = []
        counts = {"expired": 0, "expired_bytes": 0, "cleared": 0}
        after = None
        while batch := list(
            (expired if after is None else expired.filter(pk__gt=after)).order_by("pk")[:batch_size]
        ):
            after = batch[-1].pk
            if dry_run:
                gone.extend(_expired_upload(upload) for upload in batch)
            else:
                batch = _expire_batch(batch, cutoff, undeleted)
            for upload in batch:
                if upload.status == UploadStatus.STORED:
                    counts["expired"] += 1
                    counts["expired_bytes"] += upload.size_bytes
                else:
                    counts["cleared"] += 1
        listed.extend(sorted(gone, key=lambda u: (u.created_at, str(u.id))))
        policies.append(
            PolicyExpiry(slug=policy.slug, retention_days=policy.retention_days, **counts)
        )
    return ExpiryResult(
        dry_run=dry_run, policies=policies, uploads=listed, undeleted_files=undeleted
    )


def _expire_batch(batch: list[Upload], cutoff: datetime, undeleted: list[str]) -> list[Upload]:
    """Events and row deletions in one transaction, then the files; returns what went."""
    with transaction.atomic(durable=True):  # durable: its end is the commit
        locked = list(
            Upload.objects.select_for_update(of=("self",))
            .select_related("policy")
            .filter(pk__in=[upload.pk for upload in batch], created_at__lt=cutoff)
        )
        for upload in locked:
            if upload.status == UploadStatus.STORED:
                services.record_removal(upload=upload, code=services.EXPIRED)
        Upload.objects.filter(pk__in=[upload.pk for upload in locked]).delete()
    for upload in locked:  # committed: the rows no longer point at these files
        try:
            services.storage().delete(upload.stored_name)  # a file already gone is no error
        except Exception:
            logger.exception(
                "could not remove the file %s of an expired upload", upload.stored_name
            )
            undeleted.append(upload.stored_name)
    return locked


def _expired_upload(upload: Upload) -> ExpiredUpload:
    return ExpiredUpload(
        id=upload.pk,
        policy_slug=upload.policy.slug,
        original_name=upload.original_name,
        stored_name=upload.stored_name,
        size_bytes=upload.size_bytes,
        created_at=upload.created_at,
        already_deleted=upload.status != UploadStatus.STORED,
    )


# Reconciliation ----------------------------------------------------------------------------------

RECONCILE_BATCH = 500


@dataclass(frozen=True)
class OrphanFile:
    """A file in storage that no stored upload names."""

    name: str
    size: int
    age: timedelta


@dataclass(frozen=True)
class MissingFile:
    """A stored upload whose file is not in storage."""

    id: uuid.UUID
    owner: str
    original_name: str
    stored_name: str
    policy_slug: str


@dataclass(frozen=True)
class ReconcileResult:
    orphans: list[OrphanFile]
    missing: list[MissingFile]
    too_young: int  # unnamed files younger than min_age: maybe an upload whose row is committing
    skipped: list[str]  # symbolic links and other non-regular entries, never followed or touched
    fixed: bool
    removed_orphans: list[str] = field(default_factory=list)
    marked_deleted: list[MissingFile] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # found, then set right meanwhile
    failures: list[str] = field(default_factory=list)  # what fix could not do, and why

    @property
    def in_step(self) -> bool:
        """Nothing out of step is left: none found, or all of it fixed."""
        if self.fixed:
            return not self.failures
        return not self.orphans and not self.missing


def reconcile_storage(
    *, min_age: timedelta, fix: bool = False, now: datetime | None = None
) -> ReconcileResult:
    """Compare the files in storages["default"] with the stored uploads.

    Orphans are files no stored upload names, once older than `min_age` (an upload stores its
    file before its row commits); missing files are stored uploads whose file is gone. With
    `fix`, orphans are deleted and each missing-file upload is marked deleted with a
    "file_missing" event, each checked again just before. Only the storage API is used, so this
    works for object stores too; on a local storage, links and anything in FILE_UPLOAD_TEMP_DIR
    are left alone."""
    now = now or timezone.now()
    storage = services.storage()
    orphans: list[OrphanFile] = []
    skipped: list[str] = []
    too_young = 0
    for names in _batched(_walk(storage, skipped), RECONCILE_BATCH):
        named = _stored_names(names)
        for name in names:
            if name in named:
                continue
            try:
                age = now - storage.get_modified_time(name)
                size = storage.size(name)
            except FileNotFoundError:  # removed meanwhile (a deletion committing)
                continue
            if age < min_age:
                too_young += 1
            else:
                orphans.append(OrphanFile(name=name, size=size, age=age))
    missing = [
        _missing_file(upload)
        for upload in Upload.objects.filter(status=UploadStatus.STORED)
        .select_related("owner", "policy")
        .order_by("created_at", "pk")
        .iterator(chunk_size=RECONCILE_BATCH)
        if not storage.exists(upload.stored_name)
    ]
    result = ReconcileResult(
        orphans=sorted(orphans, key=lambda orphan: orphan.name),
        missing=missing,
        too_young=too_young,
        skipped=sorted(skipped),
        fixed=fix,
    )
    if fix:
        for orphan in result.orphans:
            _remove_orphan(storage, orphan, result)
        for row in missing:
            _mark_missing(storage, row, result)
    return result


def _walk(storage, skipped: list[str]) -> Iterator[str]:
    """Names of the regular files in the storage, through `listdir` only; on a local storage,
    links and other non-regular entries are reported in `skipped`, never followed."""
    temp_dir = _temp_dir_name(storage)
    folders = [""]
    while folders:
        folder = folders.pop()
        directories, files = storage.listdir(folder)
        entries = [(name, True) for name in directories] + [(name, False) for name in files]
        for entry, directory in sorted(entries):
            name = posixpath.join(folder, entry)
            if name == temp_dir:
                continue
            try:
                regular = _is_regular(storage, name, directory=directory)
            except FileNotFoundError:  # removed since listdir
                continue
            if not regular:
                skipped.append(name)
            elif directory:
                folders.append(name)
            else:
                yield name


def _local_path(storage, name: str) -> str | None:
    """The file's path on a local file system; None for other storages (object stores)."""
    return storage.path(name) if isinstance(storage, FileSystemStorage) else None


def _is_regular(storage, name: str, *, directory: bool) -> bool:
    """True for a real folder or regular file (what an object store always lists)."""
    path = _local_path(storage, name)
    if path is None:
        return True
    mode = os.lstat(path).st_mode  # lstat: a link is a link, wherever it points
    return stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)


def _temp_dir_name(storage) -> str | None:
    """FILE_UPLOAD_TEMP_DIR as a name in the storage, if it lies inside the storage's folder."""
    root = _local_path(storage, "")
    if root is None:
        return None
    relative = os.path.relpath(
        os.path.realpath(settings.FILE_UPLOAD_TEMP_DIR), os.path.realpath(root)
    )
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, "/")


def _batched(names: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stored_names(names: list[str]) -> set[str]:
    return set(
        Upload.objects.filter(status=UploadStatus.STORED, stored_name__in=names).values_list(
            "stored_name", flat=True
        )
    )


def _missing_file(upload: Upload) -> MissingFile:
    return MissingFile(
        id=upload.pk,
        owner=upload.owner.get_username(),
        original_name=upload.original_name,
        stored_name=upload.stored_name,
        policy_slug=upload.policy.slug,
    )


def _remove_orphan(storage, orphan: OrphanFile, result: ReconcileResult) -> None:
    if _stored_names([orphan.name]):  # a row claimed it meanwhile
        result.left_alone.append(f"{orphan.name}: an upload names it now")
        return
    try:
        storage.delete(orphan.name)
    except Exception as error:
        logger.exception("could not remove the orphan file %s", orphan.name)
        result.failures.append(f"{orphan.name}: {error}")
        return
    result.removed_orphans.append(orphan.name)


def _mark_missing(storage, row: MissingFile, result: ReconcileResult) -> None:
    with transaction.atomic(durable=True):
        upload = (
            Upload.objects.select_for_update(of=("self",))
            .select_related("policy")
            .filter(pk=row.id, status=UploadStatus.STORED)
            .first()
        )
        if upload is None:  # deleted meanwhile: its deletion has its own event
            result.left_alone.append(f"upload {row.id}: deleted meanwhile")
            return
        if storage.exists(upload.stored_name):
            result.left_alone.append(f"upload {row.id}: its file is back")
            return
        upload.status = UploadStatus.DELETED
        upload.save(update_fields=["status"])
        services.record_removal(upload=upload, code=services.FILE_MISSING)
    result.marked_deleted.append(row)
