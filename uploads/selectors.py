"""Reads of uploads shared by the pages, the admin and the API: who sees which file, what a
rehearsal found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from uploads.models import Upload, UploadEvent, UploadStatus


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


@dataclass(frozen=True)
class RehearsalReport:
    """What a report-only policy would have refused lately."""

    days: int
    counts: list[tuple[str, int]]  # (would-be code, events), most frequent first
    latest: list[UploadEvent]


def rehearsal_report(policy_slug: str, *, days: int = 7, latest: int = 20) -> RehearsalReport:
    """The would-be refusals recorded under `policy_slug` in the last `days` days."""
    events = UploadEvent.objects.filter(
        policy_slug=policy_slug, created_at__gte=timezone.now() - timedelta(days=days)
    ).exclude(would_refuse_code="")
    counts = (
        events.values_list("would_refuse_code")
        .annotate(total=Count("id"))
        .order_by("-total", "would_refuse_code")
    )
    return RehearsalReport(
        days=days,
        counts=list(counts),
        latest=list(events.select_related("user").order_by("-created_at")[:latest]),
    )
