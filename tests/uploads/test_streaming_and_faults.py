"""Limits applied while the body streams (counted in bytes read and stored), and failures
midway: each leaves no file, no temporary file and no row."""

from __future__ import annotations

import errno
import os
from http import HTTPStatus

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError
from django.test import Client

from policies.models import MIB
from policies.services import policy_update
from tests.uploads import make_images
from tests.uploads.conftest import only_event
from tests.uploads.http import CountingStream, file_part, multipart
from uploads import receive
from uploads.models import Upload

pytestmark = pytest.mark.django_db


def post_stream(client, body: bytes, content_type: str, stream: CountingStream, **extra):
    return client.generic(
        "POST",
        "/api/v1/uploads/?policy=default",
        body,
        content_type=content_type,
        **{"wsgi.input": stream, **extra},
    )


def test_a_content_length_over_the_request_cap_is_refused_without_reading(
    signed_in, upload_dirs, default_policy
):
    body, content_type = multipart(file_part("a.txt", b"hello\n"))
    stream = CountingStream(body)
    claimed = default_policy.max_request_bytes + 1
    response = post_stream(signed_in, body, content_type, stream, CONTENT_LENGTH=str(claimed))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "request_too_large"
    assert stream.bytes_read == 0
    upload_dirs.assert_nothing_kept()
    assert only_event().code == "request_too_large"


def test_an_oversized_file_is_stored_only_up_to_its_cap(
    signed_in, upload_dirs, default_policy, actor, monkeypatch
):
    cap = 1 * MIB
    policy_update(
        policy=default_policy,
        changes={"max_file_size_bytes": cap, "max_request_bytes": 10 * MIB},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="restore",
    )
    written = []

    class CountingTemp(receive.TemporaryUploadedFile):
        def write(self, data):
            written.append(len(data))
            return super().write(data)

    monkeypatch.setattr(receive, "TemporaryUploadedFile", CountingTemp)
    body, content_type = multipart(file_part("big.txt", b"x" * (5 * MIB)))
    response = post_stream(signed_in, body, content_type, CountingStream(body))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "file_too_large"
    assert 0 < sum(written) <= cap + 2 * receive.CHUNK_BYTES
    upload_dirs.assert_nothing_kept()


def test_a_client_disconnecting_midway_leaves_nothing(signed_in, upload_dirs):
    body, content_type = multipart(file_part("big.txt", b"y" * (3 * MIB)))
    stream = CountingStream(body, fail_after=1 * MIB)
    response = post_stream(signed_in, body, content_type, stream)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    upload_dirs.assert_nothing_kept()
    assert only_event().code == "bad_request"


@pytest.fixture
def quiet_client(owner, upload_dirs):
    """A browser whose server errors come back as responses, as a real client sees them."""
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client


@pytest.mark.parametrize(
    ("name", "content"),
    [("big.txt", b"z" * (2 * MIB)), ("pic.png", make_images.benign_png())],  # moved or copied
)
def test_a_full_disk_midway_leaves_nothing(quiet_client, upload_dirs, monkeypatch, name, content):
    def fill_the_disk(storage, stored_name, _content):
        path = storage.path(stored_name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as partial:
            partial.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", fill_the_disk)
    body, content_type = multipart(file_part(name, content))
    response = post_stream(quiet_client, body, content_type, CountingStream(body))
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json()["code"] == "server_error"
    upload_dirs.assert_nothing_kept()


def test_the_database_failing_after_the_file_is_written_leaves_nothing(
    quiet_client, upload_dirs, monkeypatch
):
    def fail(**kwargs):
        assert upload_dirs.stored_files(), "the file is written before the row"
        raise DatabaseError("connection lost")

    monkeypatch.setattr(Upload.objects, "create", fail)
    body, content_type = multipart(file_part("a.txt", b"hello\n"))
    response = post_stream(quiet_client, body, content_type, CountingStream(body))
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    upload_dirs.assert_nothing_kept()
