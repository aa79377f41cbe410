"""Reads of uploads shared by the pages and the API: who sees which file."""

from __future__ import annotations

from django.db.models import QuerySet

from uploads.models import Upload, UploadStatus


def uploads_visible_to(user) -> QuerySet[Upload]:
    """The caller's stored uploads; every stored upload for holders of `view_upload`.

    Views look objects up in this queryset, so another user's id answers 404, not 403.
    """
    stored = Upload.objects.filter(status=UploadStatus.STORED).select_related("policy")
    if user.has_perm("uploads.view_upload"):
        return stored
    return stored.filter(owner=user)


def may_delete(user, upload: Upload) -> bool:
    return upload.owner_id == user.pk or user.has_perm("uploads.delete_upload")
