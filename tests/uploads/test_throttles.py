"""Upload throttles: the fixed-window counter (database and Redis), the DRF throttle classes, the
form view's check, and exact limits under parallel requests."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, transaction
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from project.errors import PortcullisError
from uploads import throttles
from uploads.models import RateCounter
from uploads.throttles import (
    UploadAddressThrottle,
    UploadUserThrottle,
    check_upload_throttles,
    hit,
)

TEST_REDIS_URL = os.environ.get("THROTTLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DATABASE_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "portcullis_cache",
    }
}
# Half-way through a one-minute window: 30 seconds left.
T = 60 * 28_333_334 + 30.0


# --- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def redis_cache(settings) -> Iterator[redis.Redis]:
    """The default cache on a Redis database of its own, under a prefix no other test uses."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        client.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {TEST_REDIS_URL} is required in CI: {exc}")
        pytest.skip(f"Redis at {TEST_REDIS_URL} is not reachable: {exc}")
    prefix = f"test-throttles-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TEST_REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    client.prefix = prefix
    yield client
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["database", "redis"])
def backend(request, settings) -> str:
    """Run the test once on each counter backend, chosen through the default cache."""
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    else:
        settings.CACHES = DATABASE_CACHES
    return request.param


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The throttles' clock, stopped half-way through a minute."""
    now = SimpleNamespace(value=T)
    monkeypatch.setattr(throttles, "_now", lambda: now.value)
    return now


def set_rates(settings, *, user: str | None = "1000/minute", address: str | None = "1000/minute"):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"uploads": user, "uploads_address": address},
    }


def upload_request(user=None, **meta: str):
    request = RequestFactory().post("/upload/", **meta)
    request.user = user or AnonymousUser()
    return request


def in_parallel(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in `count` threads released together, each on its own database
    connection (closed at its end); the results in order, or the first error raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # a thread cannot fail the test itself: report it
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return results


# --- hit(): one fixed-window counter ------------------------------------------------------------


@pytest.mark.django_db
def test_hit_counts_within_a_window_and_restarts_in_the_next(backend):
    assert [hit("k", 60, now=T) for _ in range(3)] == [(1, 30), (2, 30), (3, 30)]
    assert hit("k", 60, now=T + 29.2) == (4, 1)  # 0.8 s left rounds up
    assert hit("k", 60, now=T + 29.999) == (5, 1)  # never 0
    assert hit("k", 60, now=T + 30) == (1, 60)  # the next window starts at its boundary
    assert hit("k", 60, now=T + 31.5) == (2, 59)


@pytest.mark.django_db
def test_hit_counts_each_key_and_window_length_apart(backend):
    assert hit("a", 60, now=T) == (1, 30)
    assert hit("b", 60, now=T) == (1, 30)
    assert hit("a", 3600, now=T) == (1, 3600 - T % 3600)
    assert hit("a", 60, now=T) == (2, 30)


@pytest.mark.django_db
def test_hit_without_now_reads_the_module_clock(backend, clock):
    assert hit("k", 60) == (1, 30)
    clock.value += 60
    assert hit("k", 60) == (1, 30)


def test_hit_refuses_a_window_shorter_than_a_second():
    with pytest.raises(ValueError, match="at least 1"):
        hit("k", 0)


@pytest.mark.django_db
def test_database_counter_is_a_row_expiring_with_its_window(settings):
    settings.CACHES = DATABASE_CACHES
    hit("user:7", 60, now=T)
    hit("user:7", 60, now=T)
    (row,) = RateCounter.objects.all()
    assert row.key == f"throttle:user:7:60:{int(T // 60)}"
    assert row.hits == 2
    assert row.expires_at == datetime.fromtimestamp(T + 30, tz=UTC)


@pytest.mark.django_db
def test_overlong_keys_are_hashed_to_fit_the_column(settings):
    settings.CACHES = DATABASE_CACHES
    assert hit("x" * 300, 60, now=T) == (1, 30)
    assert hit("x" * 300, 60, now=T) == (2, 30)
    assert hit("x" * 299, 60, now=T) == (1, 30)
    keys = list(RateCounter.objects.values_list("key", flat=True))
    assert len(keys) == 2
    assert all(key.startswith("throttle:sha256:") and len(key) <= 200 for key in keys)


@pytest.mark.django_db
def test_a_new_counter_deletes_a_bounded_batch_of_expired_ones_oldest_first(settings):
    settings.CACHES = DATABASE_CACHES
    now = datetime.fromtimestamp(T, tz=UTC)
    RateCounter.objects.bulk_create(
        RateCounter(key=f"old:{i}", hits=1, expires_at=now - timedelta(seconds=1 + i))
        for i in range(throttles.PURGE_BATCH + 3)
    )
    RateCounter.objects.create(key="live", hits=1, expires_at=now + timedelta(seconds=5))

    hit("new", 60, now=T)  # creates a row: purges
    hit("new", 60, now=T)  # updates it: no purge

    assert set(RateCounter.objects.values_list("key", flat=True)) == {
        "old:0",
        "old:1",
        "old:2",
        "live",
        f"throttle:new:60:{int(T // 60)}",
    }


@pytest.mark.django_db
def test_losing_the_race_to_create_a_counter_counts_on_the_winners_row(settings, monkeypatch):
    """Another request creates the row between our update (0 rows) and our insert: the insert's
    IntegrityError rolls back to a savepoint only, and the retried update counts on that row, also
    inside an outer transaction (where PostgreSQL would refuse every query after an unhandled
    error)."""
    settings.CACHES = DATABASE_CACHES
    key = f"throttle:k:60:{int(T // 60)}"
    RateCounter.objects.create(key=key, hits=1, expires_at=datetime.fromtimestamp(T + 30, tz=UTC))
    real_increment = throttles._increment
    calls = []

    def increment_not_seeing_the_row_at_first(k: str) -> int:
        calls.append(k)
        return 0 if len(calls) == 1 else real_increment(k)

    monkeypatch.setattr(throttles, "_increment", increment_not_seeing_the_row_at_first)

    with transaction.atomic():
        assert hit("k", 60, now=T) == (2, 30)
        assert RateCounter.objects.get(key=key).hits == 2  # the transaction is still usable
    assert calls == [key, key]


@pytest.mark.django_db(transaction=True)
def test_hit_works_outside_a_transaction(settings):
    settings.CACHES = DATABASE_CACHES
    assert transaction.get_autocommit()
    assert hit("k", 60, now=T) == (1, 30)
    assert hit("k", 60, now=T) == (2, 30)
    assert RateCounter.objects.get().hits == 2


def test_redis_counters_live_in_redis_and_expire(redis_cache):
    """No database access is allowed in this test: the counter must not touch the database."""
    assert hit("k", 60, now=T) == (1, 30)
    assert hit("k", 60, now=T) == (2, 30)
    (key,) = redis_cache.scan_iter(f"{redis_cache.prefix}:*")
    assert key.decode() == f"{redis_cache.prefix}:1:throttle:k:60:{int(T // 60)}"
    assert int(redis_cache.get(key)) == 2
    assert 0 < redis_cache.ttl(key) <= 61


def test_the_settings_fixture_switches_every_threads_default_cache(redis_cache, settings):
    """caches[] keeps one connection per thread; overriding CACHES must reach them all."""
    assert isinstance(caches["default"], RedisCache)
    assert in_parallel(2, lambda _i: type(caches["default"])) == [RedisCache, RedisCache]
    settings.CACHES = DATABASE_CACHES
    assert isinstance(caches["default"], DatabaseCache)


@pytest.mark.django_db(transaction=True)
def test_parallel_hits_are_counted_exactly_once_each(backend):
    """8 threads x 25 hits on one fresh key: the counts are exactly 1..200, none repeated."""
    threads, hits_each = 8, 25

    def work(_index: int) -> list[int]:
        return [hit("race", 60, now=T)[0] for _ in range(hits_each)]

    counts = [count for counts in in_parallel(threads, work) for count in counts]

    assert sorted(counts) == list(range(1, threads * hits_each + 1))
    if backend == "database":
        assert RateCounter.objects.get().hits == threads * hits_each
    else:
        assert not RateCounter.objects.exists()


# --- The DRF throttle classes -------------------------------------------------------------------


def test_rates_are_read_from_the_settings_when_the_throttle_is_made(settings):
    set_rates(settings, user="3/minute", address="7/hour")
    assert (UploadUserThrottle().num_requests, UploadUserThrottle().duration) == (3, 60)
    assert (UploadAddressThrottle().num_requests, UploadAddressThrottle().duration) == (7, 3600)
    set_rates(settings, user="4/second")
    assert (UploadUserThrottle().num_requests, UploadUserThrottle().duration) == (4, 1)


@pytest.mark.django_db
def test_user_throttle_refuses_past_the_rate_and_counts_users_apart(
    backend, settings, clock, owner, other_user
):
    set_rates(settings, user="3/minute")

    def allowed(user) -> tuple[bool, int | None]:
        throttle = UploadUserThrottle()
        return throttle.allow_request(upload_request(user), None), throttle.wait()

    assert [allowed(owner) for _ in range(3)] == [(True, 30)] * 3
    assert allowed(owner) == (False, 30)
    assert allowed(other_user) == (True, 30)
    clock.value += 30  # the next minute
    assert allowed(owner) == (True, 60)


@pytest.mark.django_db
def test_user_throttle_leaves_anonymous_requests_to_the_address_throttle(settings, clock):
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, user="1/minute")
    throttle = UploadUserThrottle()
    assert all(throttle.allow_request(upload_request(), None) for _ in range(3))
    assert throttle.wait() is None
    assert not RateCounter.objects.exists()


@pytest.mark.django_db
def test_a_rate_of_none_turns_a_throttle_off(settings, clock, owner):
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, user=None, address=None)
    for throttle_class in (UploadUserThrottle, UploadAddressThrottle):
        assert all(throttle_class().allow_request(upload_request(owner), None) for _ in range(3))
    assert not RateCounter.objects.exists()


@pytest.mark.django_db
def test_address_throttle_behind_a_proxy_counts_the_address_the_proxy_saw(
    backend, settings, clock, owner, other_user
):
    """The client can put anything left of the proxy's entry; only the proxy's entry counts."""
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXY_COUNT = 1
    set_rates(settings, address="2/minute")

    def allowed(xff: str, user=owner) -> bool:
        request = upload_request(user, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=xff)
        return UploadAddressThrottle().allow_request(request, None)

    assert allowed("1.1.1.1, 198.51.100.7")
    assert allowed("2.2.2.2, 198.51.100.7", user=other_user)
    assert not allowed("3.3.3.3, 198.51.100.7")
    assert not allowed("198.51.100.7")
    assert allowed("1.1.1.1, 198.51.100.8")  # another client behind the same proxy


@pytest.mark.django_db
def test_address_throttle_ignores_x_forwarded_for_unless_behind_a_proxy(settings, clock, owner):
    settings.CACHES = DATABASE_CACHES
    settings.BEHIND_PROXY = False
    set_rates(settings, address="2/minute")

    def allowed(remote: str, xff: str) -> bool:
        request = upload_request(owner, REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff)
        return UploadAddressThrottle().allow_request(request, None)

    assert allowed("203.0.113.5", "1.1.1.1")
    assert allowed("203.0.113.5", "2.2.2.2")
    assert not allowed("203.0.113.5", "3.3.3.3")
    assert allowed("203.0.113.6", "1.1.1.1")
    assert set(RateCounter.objects.values_list("key", flat=True)) == {
        f"throttle:uploads_address:203.0.113.5:60:{int(T // 60)}",
        f"throttle:uploads_address:203.0.113.6:60:{int(T // 60)}",
    }


@pytest.mark.django_db
def test_address_throttle_reads_a_drf_request(settings, clock):
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, address="1/minute")
    request = Request(RequestFactory().post("/api/v1/uploads/", REMOTE_ADDR="203.0.113.5"))
    throttle = UploadAddressThrottle()
    assert throttle.allow_request(request, None)
    assert not throttle.allow_request(request, None)
    assert throttle.wait() == 30


class ThrottledView(APIView):
    throttle_classes = [UploadUserThrottle, UploadAddressThrottle]

    def post(self, request: Request) -> Response:
        return Response({"ok": True}, status=HTTPStatus.CREATED)


@pytest.mark.django_db
def test_a_drf_view_listing_the_throttles_answers_429_throttled(settings, clock, owner):
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, user="2/minute")
    view = ThrottledView.as_view()

    def post() -> Response:
        request = APIRequestFactory().post("/api/v1/uploads/", REMOTE_ADDR="203.0.113.5")
        force_authenticate(request, user=owner)
        return view(request)

    assert [post().status_code for _ in range(2)] == [HTTPStatus.CREATED] * 2
    response = post()
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.data["code"] == "throttled"
    assert response.data["retry_after"] == 30
    assert response["Retry-After"] == "30"


# --- check_upload_throttles(): the form view's check --------------------------------------------


@pytest.mark.django_db
def test_check_upload_throttles_raises_throttled_with_retry_after(backend, settings, clock, owner):
    set_rates(settings, user="2/minute")
    request = upload_request(owner, REMOTE_ADDR="203.0.113.5")
    check_upload_throttles(request)
    check_upload_throttles(request)
    clock.value += 5

    with pytest.raises(PortcullisError) as refused:
        check_upload_throttles(request)

    assert refused.value.code == "throttled"
    assert refused.value.status == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.value.extra == {"retry_after": 25}
    assert refused.value.detail == "Too many uploads; try again in 25 seconds."


@pytest.mark.django_db
def test_check_upload_throttles_refuses_an_address_past_its_rate(settings, clock):
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, user="1/minute", address="1/minute")
    check_upload_throttles(upload_request(REMOTE_ADDR="203.0.113.5"))
    clock.value += 29.5

    with pytest.raises(PortcullisError) as refused:
        check_upload_throttles(upload_request(REMOTE_ADDR="203.0.113.5"))

    assert refused.value.as_body() == {
        "code": "throttled",
        "detail": "Too many uploads; try again in 1 second.",
        "retry_after": 1,
    }
    check_upload_throttles(upload_request(REMOTE_ADDR="203.0.113.6"))


@pytest.mark.django_db
def test_check_upload_throttles_counts_every_throttle_and_waits_for_the_longest(
    settings, clock, owner
):
    """Like a DRF view, each request counts on both throttles, and the wait is the longer one."""
    settings.CACHES = DATABASE_CACHES
    set_rates(settings, user="1/minute", address="1/hour")
    check_upload_throttles(upload_request(owner, REMOTE_ADDR="203.0.113.5"))
    with pytest.raises(PortcullisError) as refused:
        check_upload_throttles(upload_request(owner, REMOTE_ADDR="203.0.113.5"))
    assert refused.value.extra["retry_after"] == 3600 - T % 3600
    assert sorted(RateCounter.objects.values_list("hits", flat=True)) == [2, 2]


@pytest.mark.django_db(transaction=True)
def test_parallel_uploads_by_one_user_hit_the_limit_exactly(backend, settings, clock, owner):
    """12 requests from one user at once against 5 a minute: exactly 5 pass, 7 are refused."""
    set_rates(settings, user="5/minute")

    def work(index: int) -> tuple[str, int] | None:
        try:
            check_upload_throttles(upload_request(owner, REMOTE_ADDR=f"203.0.113.{index + 1}"))
        except PortcullisError as refused:
            return refused.code, refused.extra["retry_after"]
        return None

    results = in_parallel(12, work)

    assert results.count(None) == 5
    assert sorted(r for r in results if r is not None) == [("throttled", 30)] * 7
