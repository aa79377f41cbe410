"""Defaults seeded after every migrate, through the services so they are audited as `system`."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from policies.models import MIB, AuditEntry, UploadPolicy
from policies.services import Actor, policy_create

DEFAULT_POLICY: dict[str, Any] = {
    "slug": "default",
    "title": "Default",
    "max_file_size_bytes": 10 * MIB,
    "max_files_per_request": 1,
    "max_request_bytes": 10 * MIB + 64 * 1024,
    "allowed_types": [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    ],
    "allowed_extensions": ["png", "jpg", "jpeg", "gif", "webp", "pdf", "txt", "csv"],
    "image_reencode": True,
    "scan": "on",
    "owner": "Portcullis operators",
    "expected_result": (
        "Images, PDFs, plain text and CSV up to 10 MiB, one file at a time; images re-encoded, "
        "PDFs with active content refused, everything else refused."
    ),
}


def _ever_seeded(using: str) -> bool:
    """True once the default policy has existed: an admin's later delete is respected."""
    return (
        AuditEntry.objects.using(using)
        .filter(object_type="upload_policy", object_repr="default")
        .exists()
    )


def seed_defaults(sender: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate handler: create what is missing, never touch what an admin changed."""
    if UploadPolicy._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated backwards past the policies tables
    if not _ever_seeded(using):
        policy_create(
            data=DEFAULT_POLICY,
            actor=Actor.system(),
            reason="Seed the default upload policy.",
            rollback_note="Edit or disable the policy. Once deleted, migrate leaves it deleted; "
            "roll back the delete to restore it.",
        )
