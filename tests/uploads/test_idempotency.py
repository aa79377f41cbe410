"""Retry-safe uploads: Idempotency-Key for API clients, a one-time token for the form."""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import UTC, timedelta
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from tests.uploads.conftest import only_event
from tests.uploads.ops import api_upload, form_upload, make_policy, token_client_for
from uploads import idempotency
from uploads.idempotency import IdempotentUpload, fingerprint
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db

KEY = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


@pytest.fixture(autouse=True)
def _forget_keys():
    yield
    cache.clear()


def test_a_retry_with_the_same_key_replays_the_answer_without_a_second_upload(api, upload_dirs):
    first = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    retry = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert first.status_code == retry.status_code == HTTPStatus.CREATED
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Upload.objects.count() == 1
    assert len(upload_dirs.stored_files()) == 1
    assert only_event().code == "accepted"  # the replay decides nothing


def test_the_same_key_with_another_payload_is_a_conflict(api, upload_dirs):
    api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    response = api_upload(api, "a.txt", b"goodbye\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json()["code"] == "idempotency_conflict"
    assert Upload.objects.count() == 1
    assert len(upload_dirs.stored_files()) == 1
    assert upload_dirs.temp_files() == []
    codes = list(UploadEvent.objects.order_by("id").values_list("code", flat=True))
    assert codes == ["accepted", "idempotency_conflict"]


def test_the_same_key_under_another_policy_is_a_conflict(api, actor, upload_dirs):
    make_policy(actor, "notes")
    api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    response = api_upload(api, "a.txt", b"hello\n", "notes", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.json()["code"] == "idempotency_conflict"


def test_keys_belong_to_their_user(api, other_user, upload_dirs):
    api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    other = token_client_for(other_user)
    response = api_upload(other, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == HTTPStatus.CREATED
    assert response.json()["id"] != Upload.objects.get(owner__username="owner").pk
    assert Upload.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_still_runs_is_409(api, owner, upload_dirs):
    """A second request arrives while the first is inside the checks (held there by an event)."""
    started, release = threading.Event(), threading.Event()
    import uploads.pipeline as pipeline

    real_inspect = pipeline.inspect_file

    def slow_inspect(*args, **kwargs):
        started.set()
        release.wait(10)
        return real_inspect(*args, **kwargs)

    pipeline.inspect_file = slow_inspect
    answers = {}
    try:

        def first() -> None:
            try:
                answers["first"] = api_upload(
                    token_client_for(owner), "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY
                )
            finally:
                connection.close()

        thread = threading.Thread(target=first)
        thread.start()
        assert started.wait(10)
        pipeline.inspect_file = real_inspect
        answers["second"] = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
        release.set()
        thread.join()
    finally:
        pipeline.inspect_file = real_inspect
        release.set()
    assert answers["second"].status_code == HTTPStatus.CONFLICT
    assert answers["second"].json()["code"] == "idempotency_in_progress"
    assert answers["first"].status_code == HTTPStatus.CREATED
    assert Upload.objects.count() == 1
    assert len(upload_dirs.stored_files()) == 1
    assert upload_dirs.temp_files() == []
    codes = sorted(UploadEvent.objects.values_list("code", flat=True))
    assert codes == ["accepted", "idempotency_in_progress"]


def test_a_refused_upload_lets_the_key_go(api, upload_dirs):
    refused = api_upload(api, "a.exe", b"MZ\x90\x00", HTTP_IDEMPOTENCY_KEY=KEY)
    assert refused.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    retried = api_upload(api, "a.txt", b"fixed\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert retried.status_code == HTTPStatus.CREATED


def test_keys_live_in_the_shared_cache_and_expire_after_the_setting(
    api, owner, settings, upload_dirs
):
    settings.UPLOAD_IDEMPOTENCY_TTL_SECONDS = 3600
    before = timezone.now()
    api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    key = cache.make_key(IdempotentUpload(owner, KEY.strip('"')).cache_key)
    with connection.cursor() as cursor:  # the database cache, as configured without REDIS_URL
        cursor.execute("SELECT expires FROM portcullis_cache WHERE cache_key = %s", [key])
        (expires,) = cursor.fetchone()
    expires = expires if timezone.is_aware(expires) else timezone.make_aware(expires, UTC)
    assert timedelta(seconds=3590) < expires - before < timedelta(seconds=3610)
    cache.clear()  # what expiry does
    again = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert again.status_code == HTTPStatus.CREATED
    assert "Idempotent-Replayed" not in again
    assert Upload.objects.count() == 2


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "a\x01b"])
def test_a_malformed_key_is_a_clear_400(api, bad, upload_dirs):
    response = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=bad)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert "Idempotency-Key" in response.json()["detail"]
    upload_dirs.assert_nothing_kept()


def _form_token(page: bytes) -> str:
    match = re.search(rb'name="idempotency_key" value="([^"]+)"', page)
    assert match, "the form carries a one-time token"
    return match.group(1).decode()


def test_a_double_submitted_form_makes_one_upload(signed_in, upload_dirs):
    token = _form_token(signed_in.get("/upload/").content)
    assert token != _form_token(signed_in.get("/upload/").content)  # one per form shown
    fields = [(idempotency.FORM_FIELD, token)]
    first = form_upload(signed_in, "a.txt", b"hello\n", fields=fields)
    second = form_upload(signed_in, "a.txt", b"hello\n", fields=fields)
    assert first.status_code == second.status_code == HTTPStatus.FOUND
    assert Upload.objects.count() == 1
    assert UploadEvent.objects.count() == 1
    page = signed_in.get(second["Location"]).content.decode()
    assert "Already uploaded a.txt" in page


def test_the_form_token_reused_for_another_file_is_a_conflict(signed_in, upload_dirs):
    fields = [(idempotency.FORM_FIELD, _form_token(signed_in.get("/upload/").content))]
    assert form_upload(signed_in, "a.txt", b"hello\n", fields=fields).status_code == 302
    page = form_upload(signed_in, "b.txt", b"another file\n", fields=fields)
    assert page.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "already used for a different upload" in page.content.decode()
    assert Upload.objects.count() == 1
    assert len(upload_dirs.stored_files()) == 1
    assert upload_dirs.temp_files() == []
    assert UploadEvent.objects.filter(code="idempotency_conflict").count() == 1


def test_a_form_sent_again_while_the_first_is_checked_says_so(signed_in, owner, upload_dirs):
    token = _form_token(signed_in.get("/upload/").content)
    body = b"hello\n"
    # Another worker holds the claim: the first submit of this form, still being checked.
    running = IdempotentUpload(owner, token)
    running.claim(fingerprint("default", [(len(body), hashlib.sha256(body).hexdigest())]))
    page = form_upload(signed_in, "a.txt", body, fields=[(idempotency.FORM_FIELD, token)])
    assert page.status_code == HTTPStatus.CONFLICT
    assert "still being processed" in page.content.decode()
    assert UploadEvent.objects.get().code == "idempotency_in_progress"
    upload_dirs.assert_nothing_kept()


def test_a_retry_is_replayed_even_when_the_first_upload_filled_the_quota(api, actor, upload_dirs):
    make_policy(actor, "one-a-day", quota_files=1)
    first = api_upload(api, "a.txt", b"hello\n", "one-a-day", HTTP_IDEMPOTENCY_KEY=KEY)
    retry = api_upload(api, "a.txt", b"hello\n", "one-a-day", HTTP_IDEMPOTENCY_KEY=KEY)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    other = api_upload(api, "b.txt", b"new\n", "one-a-day")
    assert other.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert Upload.objects.count() == 1


def test_a_double_submitted_form_at_the_quota_still_says_already_uploaded(
    signed_in, actor, upload_dirs
):
    make_policy(actor, "one-a-day", quota_files=1)
    fields = [(idempotency.FORM_FIELD, _form_token(signed_in.get("/upload/one-a-day/").content))]
    form_upload(signed_in, "a.txt", b"hello\n", "one-a-day", fields=fields)
    second = form_upload(signed_in, "a.txt", b"hello\n", "one-a-day", fields=fields)
    assert second.status_code == HTTPStatus.FOUND
    assert "Already uploaded a.txt" in signed_in.get(second["Location"]).content.decode()
    assert Upload.objects.count() == 1


def test_a_stored_upload_keeps_its_key_even_if_answering_fails(api, monkeypatch, upload_dirs):
    def broken_answer(uploads):
        raise RuntimeError("the serializer broke after the commit")

    monkeypatch.setattr("uploads.api._created_body", broken_answer)
    api.raise_request_exception = False
    assert api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY).status_code == 500
    monkeypatch.undo()
    retry = api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    assert retry.status_code == HTTPStatus.CONFLICT  # not a second upload
    assert Upload.objects.count() == 1


def test_after_a_lost_answer_the_key_stays_held_as_long_as_an_answer_would(
    api, owner, monkeypatch, settings, upload_dirs
):
    settings.UPLOAD_IDEMPOTENCY_TTL_SECONDS = 7200
    monkeypatch.setattr(
        "uploads.api._created_body", lambda uploads: (_ for _ in ()).throw(RuntimeError("lost"))
    )
    api.raise_request_exception = False
    api_upload(api, "a.txt", b"hello\n", HTTP_IDEMPOTENCY_KEY=KEY)
    key = cache.make_key(IdempotentUpload(owner, KEY.strip('"')).cache_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT expires FROM portcullis_cache WHERE cache_key = %s", [key])
        (expires,) = cursor.fetchone()
    expires = expires if timezone.is_aware(expires) else timezone.make_aware(expires, UTC)
    assert expires - timezone.now() > timedelta(seconds=7000)  # not the 10-minute claim
