"""Decisions in their documented order on the paths where a CSRF check reads the body first,
bodies that end early, odd names that must be refusals rather than errors, and the log line."""

from __future__ import annotations

import io
import logging
import zipfile
from http import HTTPStatus

import pytest
from django.test import Client

from policies.models import MIB
from policies.services import policy_update
from tests.conftest import PASSWORD
from tests.uploads.conftest import only_event
from tests.uploads.http import CountingStream, Part, file_part, multipart

pytestmark = pytest.mark.django_db


def strict_browser() -> Client:
    """A signed-in browser whose CSRF checks are enforced, as a real one's are."""
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="owner", password=PASSWORD)
    browser.get("/upload/")
    return browser


def post(browser, path: str, *parts: Part, stream: CountingStream | None = None, **extra):
    body, content_type = multipart(*parts)
    stream = stream or CountingStream(body)
    return browser.generic(
        "POST", path, body, content_type=content_type, **{"wsgi.input": stream, **extra}
    ), stream


def token(browser) -> Part:
    return Part("csrfmiddlewaretoken", browser.cookies["csrftoken"].value.encode())


@pytest.fixture
def small_cap(default_policy, actor):
    policy_update(
        policy=default_policy,
        changes={"max_file_size_bytes": 1000, "max_request_bytes": 1 * MIB},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="restore",
    )


@pytest.mark.parametrize("path", ["/upload/", "/api/v1/uploads/"])
def test_a_content_length_over_the_cap_reads_nothing_even_with_csrf_checks(
    owner, upload_dirs, default_policy, path
):
    browser = strict_browser()
    claimed = str(default_policy.max_request_bytes + 1)
    response, stream = post(
        browser, path, token(browser), file_part("a.txt", b"hi\n"), CONTENT_LENGTH=claimed
    )
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert stream.bytes_read == 0
    assert only_event().code == "request_too_large"


@pytest.mark.parametrize("path", ["/upload/", "/api/v1/uploads/"])
def test_who_may_upload_is_decided_before_the_body_is_read(
    owner, upload_dirs, default_policy, actor, path
):
    policy_update(
        policy=default_policy,
        changes={"upload_access": "staff"},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="open it again",
    )
    browser = strict_browser()
    response, stream = post(browser, path, token(browser), file_part("a.txt", b"x" * 100_000))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert stream.bytes_read == 0
    assert only_event().code == "permission_denied"
    upload_dirs.assert_nothing_kept()


@pytest.mark.parametrize("path", ["/upload/", "/api/v1/uploads/"])
def test_a_file_over_its_cap_before_the_csrf_token_is_still_file_too_large(
    owner, upload_dirs, small_cap, path
):
    browser = strict_browser()
    response, _ = post(browser, path, file_part("big.txt", b"x" * 5000), token(browser))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert only_event().code == "file_too_large"
    upload_dirs.assert_nothing_kept()


def test_a_body_that_ends_inside_a_file_is_an_interrupted_upload(
    signed_in, upload_dirs, default_policy, actor
):
    policy_update(
        policy=default_policy,
        changes={"max_files_per_request": 2},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="restore",
    )
    body, content_type = multipart(file_part("a.txt", b"first\n"), file_part("b.txt", b"y" * 9000))
    cut = body[: len(body) - 3000]  # the client went away: the server sees the body end early
    response = signed_in.generic(
        "POST", "/api/v1/uploads/", cut, content_type=content_type, CONTENT_LENGTH=str(len(cut))
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert only_event().code == "bad_request"
    upload_dirs.assert_nothing_kept()


@pytest.mark.parametrize(
    "name",
    ["a.t\x00xt", "notes.txt\x00", "a." + "x" * 300, "\x00", "a" * 400 + ".txt"],
    ids=["nul-in-extension", "trailing-nul", "overlong-extension", "only-nul", "overlong-stem"],
)
def test_odd_names_are_refusals_not_errors(signed_in, upload_dirs, name):
    body, content_type = multipart(file_part(name, b"hello\n"))
    response = signed_in.post("/api/v1/uploads/", body, content_type=content_type)
    body = response.json()
    if name.startswith("a" * 400):  # a long name is shortened, not refused
        assert response.status_code == HTTPStatus.CREATED
        assert len(body["filename"].encode()) <= 255
        assert body["filename"].endswith(".txt")
        return
    assert body["code"] in ("filename_invalid", "extension_not_allowed"), body
    assert only_event().code == body["code"]
    upload_dirs.assert_nothing_kept()


def word_document() -> bytes:
    """The parts libmagic looks for to call a ZIP file a Word document."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as document:
        document.writestr("[Content_Types].xml", "<Types/>")
        document.writestr("_rels/.rels", "<Relationships/>")
        document.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def test_each_decision_is_one_log_line_without_the_bytes(
    signed_in, upload_dirs, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="portcullis.uploads")
    with django_capture_on_commit_callbacks(execute=True):
        body, content_type = multipart(file_part("notes.txt", b"secret words\n"))
        signed_in.post("/api/v1/uploads/", body, content_type=content_type)
        body, content_type = multipart(file_part("page.txt", b"<html><script>x</script></html>"))
        signed_in.post("/api/v1/uploads/", body, content_type=content_type)
    lines = [r.getMessage() for r in caplog.records if r.name == "portcullis.uploads"]
    assert len(lines) == 2
    assert lines[0].startswith("upload decision code=accepted policy=default user=")
    assert "size=13 type=text/plain sha256=" in lines[0]
    assert lines[1].startswith("upload decision code=type_not_allowed")
    assert all("secret words" not in line and "<script>" not in line for line in lines)


@pytest.mark.parametrize("cut_in", ["second-part-headers", "trailing-field"])
def test_a_body_that_ends_between_parts_keeps_nothing(
    signed_in, upload_dirs, default_policy, actor, cut_in
):
    """Under gunicorn a client that goes away just ends the body: a complete first file must
    not be kept when the form never finished."""
    policy_update(
        policy=default_policy,
        changes={"max_files_per_request": 2},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="restore",
    )
    second = (
        file_part("b.txt", b"second\n")
        if cut_in == "second-part-headers"
        else Part("note", b"x" * 500)
    )
    body, content_type = multipart(file_part("a.txt", b"first\n"), second)
    marker = b'filename="b.txt"' if cut_in == "second-part-headers" else b"x" * 100
    cut = body[: body.index(marker) + len(marker) // 2]
    response = signed_in.generic(
        "POST", "/api/v1/uploads/", cut, content_type=content_type, CONTENT_LENGTH=str(len(cut))
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert only_event().code == "bad_request"
    upload_dirs.assert_nothing_kept()


def test_the_recorded_size_and_hash_hold_when_the_storage_closes_what_it_stores(
    signed_in, upload_dirs, monkeypatch
):
    """S3 storages close the file they upload: size and hash are measured before storing."""
    from django.core.files.storage import FileSystemStorage

    from tests.uploads import make_images

    original_save = FileSystemStorage._save

    def save_then_close(storage, name, content):
        saved = original_save(storage, name, content)
        content.close()
        return saved

    monkeypatch.setattr(FileSystemStorage, "_save", save_then_close)
    body, content_type = multipart(file_part("photo.jpg", make_images.benign_jpeg()))
    response = signed_in.post("/api/v1/uploads/", body, content_type=content_type)
    assert response.status_code == HTTPStatus.CREATED, response.json()
    stored = upload_dirs.stored_files()[0].read_bytes()
    import hashlib

    assert response.json()["size"] == len(stored)
    assert response.json()["sha256"] == hashlib.sha256(stored).hexdigest()


def test_no_accepted_log_line_when_the_database_fails(
    quiet_owner_client, upload_dirs, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from django.db import DatabaseError

    from uploads.models import Upload

    def fail(**kwargs):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(Upload.objects, "create", fail)
    caplog.set_level(logging.INFO, logger="portcullis.uploads")
    with django_capture_on_commit_callbacks(execute=True):
        body, content_type = multipart(file_part("a.txt", b"hello\n"))
        response = quiet_owner_client.post("/api/v1/uploads/", body, content_type=content_type)
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert not [r for r in caplog.records if "code=accepted" in r.getMessage()]


@pytest.fixture
def quiet_owner_client(owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client
