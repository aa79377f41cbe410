"""Defaults seeded after migrate, through the services so they are audited as `system`.

Each default is created once: an admin's later change or delete is respected.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from policies.models import MIB, AuditEntry, UploadPolicy
from policies.presets import seeded_rules
from policies.services import Actor, policy_create, rule_create

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


def _ever_existed(using: str, object_type: str, key: str) -> bool:
    """True once the object has existed: an admin's later delete is respected."""
    return AuditEntry.objects.using(using).filter(object_type=object_type, object_repr=key).exists()


def seed_defaults(sender: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate handler: create what never existed, never touch what an admin changed."""
    if UploadPolicy._meta.db_table not in connections[using].introspection.table_names():
        return  # migrated backwards past the policies tables
    if not _ever_existed(using, "upload_policy", "default"):
        policy_create(
            data=DEFAULT_POLICY,
            actor=Actor.system(),
            reason="Seed the default upload policy.",
            rollback_note="Edit or disable the policy. Once deleted, migrate leaves it deleted; "
            "roll back the delete to restore it.",
        )
    for rule in seeded_rules():
        if not _ever_existed(using, "header_rule", rule["name"]):
            rule_create(
                data=rule,
                actor=Actor.system(),
                reason=f"Seed the default header rule {rule['name']}.",
                rollback_note="Edit or disable the rule; `manage.py headers_reset` restores "
                "the seeded rules.",
            )
