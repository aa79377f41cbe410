"""Reads of uploads shared by the pages, the admin and the API: who sees which file, what a
rehearsal found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from uploads.models import Upload, UploadEvent, UploadStatus
from uploads.services import ACCEPTED


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


# --- What uploads a policy change did, and what was refused lately ------------------------------

WATCH_MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Outcomes:
    """The upload decisions under one policy in [start, end), by every slug it had there."""

    policy_slugs: tuple[str, ...]
    start: datetime
    end: datetime
    accepted: int
    refused: int
    would_refuse: int  # accepted under report-only, which the policy would have refused
    top_codes: list[tuple[str, int]]  # refusal codes, most frequent first

    @property
    def total(self) -> int:
        return self.accepted + self.refused

    @property
    def named(self) -> str:
        return " / ".join(self.policy_slugs)

    @property
    def refused_percent(self) -> int | None:
        return round(100 * self.refused / self.total) if self.total else None


@dataclass(frozen=True)
class ReleaseWatch:
    """Decisions for the same length of time before and after a policy change."""

    changed_at: datetime
    window: timedelta  # min(time since the change, WATCH_MAX_WINDOW)
    before: Outcomes
    after: Outcomes

    @property
    def complete(self) -> bool:
        """Whether the window has reached its full length (else it grows until it does)."""
        return self.window >= WATCH_MAX_WINDOW


def outcomes(
    policy_slugs: tuple[str, ...], start: datetime, end: datetime, *, top: int = 3
) -> Outcomes:
    events = UploadEvent.objects.filter(
        policy_slug__in=policy_slugs, created_at__gte=start, created_at__lt=end
    )
    counts = events.aggregate(
        accepted=Count("id", filter=Q(code=ACCEPTED)),
        refused=Count("id", filter=~Q(code=ACCEPTED)),
        would_refuse=Count("id", filter=Q(code=ACCEPTED) & ~Q(would_refuse_code="")),
    )
    codes = (
        events.exclude(code=ACCEPTED)
        .values_list("code")
        .annotate(total=Count("id"))
        .order_by("-total", "code")
    )
    return Outcomes(policy_slugs, start, end, **counts, top_codes=list(codes[:top]))


def release_watch(
    *,
    changed_at: datetime,
    before_slug: str,
    after_slug: str,
    later_slugs: Sequence[str] = (),
    now: datetime | None = None,
) -> ReleaseWatch:
    """Accepted and refused uploads in equal windows on each side of a change at `changed_at`.

    The window is the time since the change, at most WATCH_MAX_WINDOW, so both sides always
    cover the same length of time. The slugs are the policy's before and after the change (a
    change may rename it), and `later_slugs` any it was renamed to later inside the window.
    """
    now = now or timezone.now()
    window = max(min(now - changed_at, WATCH_MAX_WINDOW), timedelta(0))
    after_slugs = tuple(dict.fromkeys([after_slug, *later_slugs]))
    return ReleaseWatch(
        changed_at=changed_at,
        window=window,
        before=outcomes((before_slug,), changed_at - window, changed_at),
        after=outcomes(after_slugs, changed_at, changed_at + window),
    )


def refusals_by_day_and_code(since: datetime) -> list[tuple[date, str, int]]:
    """(local day, code, refused uploads) from `since` on, in day then code order."""
    rows = (
        UploadEvent.objects.filter(created_at__gte=since)
        .exclude(code=ACCEPTED)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values_list("day", "code")
        .annotate(total=Count("id"))
        .order_by("day", "code")
    )
    return list(rows)


def refusals_by(field: str, since: datetime, *, top: int) -> list[tuple[str, int]]:
    """The `top` values of `field` (code, policy_slug) by refused uploads from `since` on."""
    rows = (
        UploadEvent.objects.filter(created_at__gte=since)
        .exclude(code=ACCEPTED)
        .values_list(field)
        .annotate(total=Count("id"))
        .order_by("-total", field)
    )
    return list(rows[:top])


def decision_counts(since: datetime) -> dict[str, int]:
    """Accepted and refused uploads from `since` on."""
    return UploadEvent.objects.filter(created_at__gte=since).aggregate(
        accepted=Count("id", filter=Q(code=ACCEPTED)),
        refused=Count("id", filter=~Q(code=ACCEPTED)),
    )
