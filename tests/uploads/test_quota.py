"""Per-user quotas per policy: files and bytes over a rolling period, refused with 429
`quota_exceeded`, a Retry-After and the limit in the detail; exact under parallel uploads."""

from __future__ import annotations

import threading
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.test import Client
from django.utils import timezone

from tests.uploads.http import CountingStream, file_part, multipart
from tests.uploads.ops import api_upload, at_once, form_upload, make_policy, token_client_for
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


def test_the_files_quota_refuses_the_file_past_it_with_retry_after(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=2, quota_period_seconds=3600)
    for name in ("a.txt", "b.txt"):
        assert api_upload(api, name, b"hi\n", policy="limited").status_code == HTTPStatus.CREATED
    response = api_upload(api, "c.txt", b"hi\n", policy="limited")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert "2 files per hour" in body["detail"]
    assert 3590 <= body["retry_after"] <= 3600
    assert response["Retry-After"] == str(body["retry_after"])
    assert Upload.objects.count() == 2
    assert len(upload_dirs.stored_files()) == 2
    assert UploadEvent.objects.filter(code="quota_exceeded").count() == 1


def test_retry_after_is_when_the_oldest_upload_leaves_the_period(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=2, quota_period_seconds=3600)
    api_upload(api, "a.txt", b"hi\n", policy="limited")
    api_upload(api, "b.txt", b"hi\n", policy="limited")
    Upload.objects.filter(original_name="a.txt").update(
        created_at=timezone.now() - timedelta(minutes=50)
    )
    response = api_upload(api, "c.txt", b"hi\n", policy="limited")
    assert 590 <= response.json()["retry_after"] <= 600  # a.txt leaves in 10 minutes
    assert "10 minutes" in response.json()["detail"]


def test_uploads_older_than_the_period_no_longer_count(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1, quota_period_seconds=3600)
    api_upload(api, "a.txt", b"hi\n", policy="limited")
    Upload.objects.update(created_at=timezone.now() - timedelta(hours=2))
    assert api_upload(api, "b.txt", b"hi\n", policy="limited").status_code == HTTPStatus.CREATED


def test_the_bytes_quota_counts_sizes_and_other_users_are_unaffected(
    api, other_user, actor, upload_dirs
):
    make_policy(actor, "limited", quota_bytes=10)
    assert api_upload(api, "a.txt", b"123456\n", policy="limited").status_code == 201
    response = api_upload(api, "b.txt", b"12345\n", policy="limited")  # 7 + 6 > 10
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "10 bytes per day" in response.json()["detail"]
    other = token_client_for(other_user)
    assert api_upload(other, "b.txt", b"12345\n", policy="limited").status_code == 201


def test_a_file_larger_than_the_whole_quota_says_so(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_bytes=10)
    response = api_upload(api, "a.txt", b"x" * 20, policy="limited")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "larger than the 10 bytes" in response.json()["detail"]
    assert "cannot be uploaded here at all" in response.json()["detail"]
    assert response["Retry-After"] == "86400" == str(response.json()["retry_after"])
    upload_dirs.assert_nothing_kept()


def test_more_files_in_one_request_than_the_quota_says_so(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1, max_files_per_request=3)
    body, content_type = multipart(file_part("a.txt", b"a\n"), file_part("b.txt", b"b\n"))
    response = api.post("/api/v1/uploads/?policy=limited", body, content_type=content_type)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "more files than the 1 file" in response.json()["detail"]
    assert response["Retry-After"] == "86400"
    upload_dirs.assert_nothing_kept()


def test_the_quota_is_per_policy(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1)
    assert api_upload(api, "a.txt", b"hi\n", policy="limited").status_code == 201
    assert api_upload(api, "a.txt", b"hi\n").status_code == 201  # the default policy


def test_deleted_uploads_still_count(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1)
    created = api_upload(api, "a.txt", b"hi\n", policy="limited").json()
    assert api.delete(f"/api/v1/uploads/{created['id']}/").status_code == 204
    assert api_upload(api, "b.txt", b"hi\n", policy="limited").status_code == 429


def test_the_form_shows_the_limit_and_sends_retry_after(signed_in, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1)
    assert form_upload(signed_in, "a.txt", b"hi\n", policy="limited").status_code == 302
    page = form_upload(signed_in, "b.txt", b"hi\n", policy="limited")
    assert page.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "1 file per day" in page.content.decode()
    assert 86_390 <= int(page["Retry-After"]) <= 86_400  # when a.txt leaves the day
    assert list(UploadEvent.objects.order_by("id").values_list("code", flat=True)) == [
        "accepted",
        "quota_exceeded",
    ]


def _parallel_uploads(user, count: int, policy: str) -> list[int]:
    """`count` uploads by `user` at once, each on its own connection; their status codes."""

    def send(index: int) -> int:
        client = Client()
        client.force_login(user)
        return api_upload(client, f"f{index}.txt", f"file {index}\n".encode(), policy).status_code

    return at_once(count, send)


@pytest.fixture
def crowded_quota_check(monkeypatch):
    """Each upload's locked quota check waits (up to 0.3 s) for another to be inside it too.

    Without the user's lock they all are, so all see room and all store: the race, made certain
    instead of likely. With it, one at a time gets in, so each waits alone and then goes on.
    """
    import uploads.services as services

    real, inside, lock = services.quota_refusal, [0], threading.Condition()

    def crowded(*args, **kwargs):
        refusal = real(*args, **kwargs)
        with lock:
            inside[0] += 1
            lock.notify_all()
            lock.wait_for(lambda: inside[0] > 1, timeout=0.3)
        try:
            return refusal
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(services, "quota_refusal", crowded)


@pytest.mark.django_db(transaction=True)
def test_parallel_uploads_by_one_user_stop_exactly_at_the_quota(
    owner, actor, upload_dirs, crowded_quota_check
):
    make_policy(actor, "limited", quota_files=3)
    statuses = _parallel_uploads(owner, 8, "limited")
    assert sorted(statuses) == [201] * 3 + [429] * 5
    assert Upload.objects.count() == 3
    assert UploadEvent.objects.filter(code="quota_exceeded").count() == 5
    assert UploadEvent.objects.filter(code="accepted").count() == 3
    assert len(upload_dirs.stored_files()) == 3
    assert upload_dirs.temp_files() == []


def test_an_api_upload_at_the_quota_is_refused_before_its_body_is_read(api, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1)
    api_upload(api, "a.txt", b"hi\n", policy="limited")
    body, content_type = multipart(file_part("b.txt", b"x" * 100_000))
    stream = CountingStream(body)
    response = api.generic(
        "POST",
        "/api/v1/uploads/?policy=limited",
        body,
        content_type=content_type,
        **{"wsgi.input": stream},
    )
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert stream.bytes_read < 1000  # refused from the count, not after the upload
    event = UploadEvent.objects.get(code="quota_exceeded")
    assert event.filename == ""  # nothing of the body was read


def test_a_quota_refusal_after_the_body_records_the_file(signed_in, actor, upload_dirs):
    make_policy(actor, "limited", quota_files=1)
    form_upload(signed_in, "a.txt", b"hi\n", policy="limited")
    form_upload(signed_in, "second.txt", b"hello\n", policy="limited")
    event = UploadEvent.objects.get(code="quota_exceeded")
    assert (event.filename, event.size_bytes) == ("second.txt", 6)
