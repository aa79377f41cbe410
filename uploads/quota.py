"""Per-user upload quotas: files and bytes per policy over a rolling period.

Every upload made under the policy in the last `quota_period_seconds` counts, deleted ones too
(a quota limits how much a user may send, not how much they keep). `quota_refusal()` runs twice:
before the body is read (a user already at the limit is told at once) and inside the transaction
that stores the files, after `lock_uploader()`, so parallel uploads by one user cannot both fit
into the last free place.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from policies.models import UploadPolicy
from policies.units import format_bytes
from project.errors import UploadRejected
from uploads.models import Upload


def lock_uploader(user) -> None:
    """Serialise this user's uploads until the transaction ends (the user's row lock on
    PostgreSQL; SQLite's IMMEDIATE transactions already serialise every writer)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def quota_refusal(
    policy: UploadPolicy, user, incoming_sizes: list[int], now: datetime | None = None
) -> UploadRejected | None:
    """`quota_exceeded` (with `retry_after`) if the user's uploads in the period plus the
    incoming files would pass either limit of the policy; None when they fit."""
    if policy.quota_files is None and policy.quota_bytes is None:
        return None
    now = now or timezone.now()
    period = timedelta(seconds=policy.quota_period_seconds)
    recent = list(_recent_uploads(policy, user, since=now - period))
    if policy.quota_files is not None:
        excess = len(recent) + len(incoming_sizes) - policy.quota_files
        limit = f"{policy.quota_files:,} file{'s' if policy.quota_files != 1 else ''}"
        if len(incoming_sizes) > policy.quota_files:  # never fits: retrying will not help
            return UploadRejected(
                "quota_exceeded",
                f"This request carries more files than the {limit} this upload accepts from "
                f"one person {_per(policy.quota_period_seconds)}.",
                retry_after=policy.quota_period_seconds,
            )
        if excess > 0:
            return _refusal(policy, limit, _retry_after(recent, excess, now, period, by_count=True))
    if policy.quota_bytes is not None:
        used = sum(size for _, size in recent)
        excess = used + sum(incoming_sizes) - policy.quota_bytes
        if excess > 0:
            limit = format_bytes(policy.quota_bytes)
            if sum(incoming_sizes) > policy.quota_bytes:  # never fits: retrying will not help
                return UploadRejected(
                    "quota_exceeded",
                    f"These files are larger than the {limit} this upload accepts from one "
                    f"person {_per(policy.quota_period_seconds)}, so they cannot be uploaded "
                    "here at all.",
                    retry_after=policy.quota_period_seconds,
                )
            return _refusal(policy, limit, _retry_after(recent, excess, now, period))
    return None


def _recent_uploads(policy: UploadPolicy, user, *, since: datetime) -> QuerySet:
    """(created_at, size) of the user's uploads under the policy since `since`, oldest first."""
    return (
        Upload.objects.filter(owner_id=user.pk, policy=policy, created_at__gt=since)
        .order_by("created_at")
        .values_list("created_at", "size_bytes")
    )


def _retry_after(
    recent: list[tuple[datetime, int]],
    excess: int,
    now: datetime,
    period: timedelta,
    *,
    by_count: bool = False,
) -> int:
    """Seconds until enough of the oldest uploads leave the period to make room."""
    freed = 0
    for created_at, size in recent:
        freed += 1 if by_count else size
        if freed >= excess:
            return max(1, math.ceil((created_at + period - now).total_seconds()))
    return max(1, math.ceil(period.total_seconds()))


def _refusal(policy: UploadPolicy, limit: str, retry_after: int) -> UploadRejected:
    return UploadRejected(
        "quota_exceeded",
        f"You have reached this upload's limit of {limit} {_per(policy.quota_period_seconds)}. "
        f"Try again in {_duration(retry_after)}.",
        retry_after=retry_after,
    )


def _per(seconds: int) -> str:
    for unit_seconds, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds == unit_seconds:
            return f"per {unit}"
    return f"per {_duration(seconds)}"


def _duration(seconds: int) -> str:
    """A whole-number reading of a duration, rounded up: 1 second, 5 minutes, 2 hours, 3 days."""
    for unit_seconds, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= unit_seconds * 2 or seconds == unit_seconds:
            count = math.ceil(seconds / unit_seconds)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
