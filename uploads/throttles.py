"""Upload request throttles: per signed-in user and per client address, exact under concurrency.

DRF's SimpleRateThrottle keeps a list of timestamps in the cache and writes it back after reading
it, so parallel requests can all read the same list and all get through. These throttles count in
fixed windows instead, with one atomic increment per request: Redis's INCR when the shared cache is
Redis, else a row of the RateCounter table updated under its row lock (the database cache has no
atomic increment). A refused request is counted too, but never moves the window: retrying while
refused does not push back the end of the wait. At a window's edge a client can get up to twice
the rate through in a short burst (the end of one window, the start of the next).

Call them before a transaction starts: on the database backend the counter's row stays locked until
the enclosing transaction ends, so a throttle checked inside a long transaction would queue that
user's other requests behind it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from datetime import UTC, datetime
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from project.errors import PortcullisError
from project.net import client_ip
from uploads.models import RateCounter

# RateCounter.key's max_length; longer keys are hashed to fit.
_MAX_KEY_LENGTH = 200
# Expired RateCounter rows deleted, at most, each time a new row is created.
PURGE_BATCH = 100
# Attempts at creating a missing row before giving up (each loser of a race retries the update).
_ATTEMPTS = 3


def _now() -> float:
    """The clock the windows are counted on (seconds since the epoch); tests replace it."""
    return time.time()


def hit(key: str, window_seconds: int, *, now: float | None = None) -> tuple[int, int]:
    """Count one hit on `key`: (hits in the current window including this one, seconds until
    the window ends, at least 1).

    Windows are aligned to multiples of `window_seconds` since the epoch, so every process agrees
    on them. Counts are exact whatever the concurrency; works inside and outside a transaction.
    """
    if window_seconds < 1:
        raise ValueError("window_seconds must be at least 1")
    now = _now() if now is None else now
    window = int(now // window_seconds)
    window_key = f"throttle:{key}:{window_seconds}:{window}"
    if len(window_key) > _MAX_KEY_LENGTH:
        window_key = "throttle:sha256:" + hashlib.sha256(window_key.encode()).hexdigest()
    window_end = (window + 1) * window_seconds
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        hits = _redis_hit(cache, window_key, window_seconds)
    else:
        hits = _database_hit(window_key, window_end, now)
    return hits, max(1, math.ceil(window_end - now))


def _redis_hit(cache: RedisCache, key: str, window_seconds: int) -> int:
    """INCR is atomic; `add` creates the counter (with its expiry) only when it is missing."""
    for _attempt in range(_ATTEMPTS):
        cache.add(key, 0, timeout=window_seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired or evicted between add and incr
            continue
    raise RuntimeError(f"throttle counter {key!r} keeps disappearing from the cache")


def _increment(key: str) -> int:
    """Add one to the counter's row, locking it; the number of rows updated (0 or 1)."""
    return RateCounter.objects.filter(key=key).update(hits=F("hits") + 1)


def _database_hit(key: str, window_end: int, now: float) -> int:
    """UPDATE ... SET hits = hits + 1 holds the row lock until the end of the transaction, so
    the value read back is this hit's; a missing row is created, and the loser of a creation
    race (unique key) retries the update. Each attempt is its own transaction or savepoint."""
    for _attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                if _increment(key):
                    return RateCounter.objects.filter(key=key).values_list("hits", flat=True).get()
                _purge_expired(now)
                expires_at = datetime.fromtimestamp(window_end, tz=UTC)
                RateCounter.objects.create(key=key, hits=1, expires_at=expires_at)
                return 1
        except IntegrityError:  # another request created the row first: count on it
            continue
    raise RuntimeError(f"could not create the throttle counter {key!r}")


def _purge_expired(now: float) -> None:
    """Delete a bounded batch of counters of past windows, so the table does not grow forever.

    Rows another transaction holds are skipped rather than waited for (PostgreSQL; SQLite has a
    single writer anyway)."""
    expired = (
        RateCounter.objects.filter(expires_at__lt=datetime.fromtimestamp(now, tz=UTC))
        .select_for_update(skip_locked=True)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:PURGE_BATCH]
    )
    pks = list(expired)
    if pks:
        RateCounter.objects.filter(pk__in=pks).delete()


class _WindowRateThrottle(SimpleRateThrottle):
    """A scoped DRF throttle counted by `hit()` in fixed windows of the rate's period.

    The rate is read from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] when the throttle is made (DRF
    makes one per request), not from the dict SimpleRateThrottle bound at import, so a changed
    setting applies at once.
    """

    _wait: int | None = None

    def get_rate(self) -> str | None:
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()

    def get_ident_for(self, request: HttpRequest) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: HttpRequest, view: Any) -> str | None:
        ident = self.get_ident_for(request)
        if ident is None:
            return None
        return f"{self.scope}:{ident}"

    def allow_request(self, request: HttpRequest, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hits, self._wait = hit(key, self.duration)
        return hits <= self.num_requests

    def wait(self) -> int | None:
        """Seconds until the current window ends (once allow_request has counted a request)."""
        return self._wait


class UserThrottle(_WindowRateThrottle):
    """Requests per signed-in user in the subclass's scope; anonymous requests pass."""

    def get_ident_for(self, request: HttpRequest) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return str(user.pk)


class UploadUserThrottle(UserThrottle):
    """Uploads per signed-in user (scope "uploads"); the per-address throttle counts the rest."""

    scope = "uploads"


class PolicyWriteThrottle(UserThrottle):
    """Writes to policies and rules, rollbacks included, per user (scope "policy_writes")."""

    scope = "policy_writes"

    def allow_request(self, request: HttpRequest, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)


class ReportThrottle(UserThrottle):
    """Reads of the audit log, events, reports and the preview, per user (scope "reports")."""

    scope = "reports"


class UploadAddressThrottle(_WindowRateThrottle):
    """Uploads per client address (scope "uploads_address"), found as project.net.client_ip says;
    IPv6 per /64 (a subscriber's network, where every address is theirs); requests without a
    usable address share one counter."""

    scope = "uploads_address"

    def get_ident_for(self, request: HttpRequest) -> str | None:
        address = client_ip(request)
        if address and ":" in address:  # IPv6: one /64 is one subscriber's network
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return address or "unknown"


UPLOAD_THROTTLES: tuple[type[_WindowRateThrottle], ...] = (
    UploadUserThrottle,
    UploadAddressThrottle,
)


def check_upload_throttles(request: HttpRequest) -> None:
    """Count one upload request against every upload throttle, as a DRF view would; raise
    PortcullisError("throttled", ..., retry_after=seconds) when any refuses.

    For views that are not DRF views (the upload page); call it before the body is read.
    """
    waits = []
    for throttle_class in UPLOAD_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1)
    if waits:
        wait = max(waits)
        unit = "second" if wait == 1 else "seconds"
        raise PortcullisError(
            "throttled", f"Too many uploads; try again in {wait} {unit}.", retry_after=wait
        )
