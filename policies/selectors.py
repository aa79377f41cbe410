"""Reads of policies, rules and their audit trail that several callers (admin, API) share."""

from __future__ import annotations

from django.db.models import QuerySet

from policies.models import AuditEntry, UploadAccess, UploadPolicy
from policies.services import KINDS


def audit_entries_for(*, object_type: str, object_id: str) -> QuerySet[AuditEntry]:
    """One object's audit trail, newest first (it outlives the object, so deletions show too)."""
    return AuditEntry.objects.filter(object_type=object_type, object_id=object_id).order_by("-seq")


def audit_entry_for(*, object_type: str, object_id: str, seq: int) -> AuditEntry | None:
    """Entry `seq`, only if it belongs to that object (so a URL cannot mix objects)."""
    return audit_entries_for(object_type=object_type, object_id=object_id).filter(seq=seq).first()


def latest_seq_for(*, object_type: str, object_id: str) -> int | None:
    """The seq of the object's latest change: the only one that may be rolled back."""
    return (
        audit_entries_for(object_type=object_type, object_id=object_id)
        .values_list("seq", flat=True)
        .first()
    )


def is_latest_change(entry: AuditEntry) -> bool:
    return latest_seq_for(object_type=entry.object_type, object_id=entry.object_id) == entry.seq


def may_upload(policy: UploadPolicy, user) -> bool:
    """Whether `user` may upload under `policy` (its "who may upload" setting)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if policy.upload_access == UploadAccess.STAFF:
        return user.is_staff
    if policy.upload_access == UploadAccess.GROUPS:
        return user.groups.filter(name__in=policy.allowed_groups).exists()
    return True


def policies_usable_by(user) -> list[UploadPolicy]:
    """The enabled policies `user` may upload under."""
    return [p for p in UploadPolicy.objects.filter(enabled=True) if may_upload(p, user)]


def may_roll_back(user, entry: AuditEntry) -> bool:
    """Change permission on the object's model, plus add when the rollback re-creates it and
    delete when it deletes it (the admin and the API ask the same)."""
    opts = KINDS[entry.object_type].model._meta
    perm = f"{opts.app_label}.%s_{opts.model_name}"
    if not user.has_perm(perm % "change"):
        return False
    if entry.before is None:
        return user.has_perm(perm % "delete")
    if not KINDS[entry.object_type].model.objects.filter(pk=entry.object_id).exists():
        return user.has_perm(perm % "add")
    return True
