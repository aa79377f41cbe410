"""Malware scanning in the pipeline, against a real clamd (tests/clamd_server.py): through the
API and the form, with the responses, the events, the rows and the storage afterwards."""

from __future__ import annotations

import logging
from http import HTTPStatus

import pytest

from tests.uploads.conftest import only_event
from tests.uploads.ops import api_upload, change_policy, form_upload, token_client_for
from uploads.models import ScanStatus, Upload, UploadEvent

pytestmark = pytest.mark.django_db

CLEAN = b"quarterly numbers, nothing else\n"


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


def test_eicar_is_refused_by_the_real_scanner_with_the_signature_only_in_the_event(
    api, clamd_socket, upload_dirs, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="portcullis.uploads")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_upload(api, "notes.txt", clamd_socket.eicar)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    body = response.json()
    assert body["code"] == "malware_detected"
    assert clamd_socket.detected_as not in str(body)  # the signature stays on our side
    event = only_event()
    assert (event.code, event.scan) == ("malware_detected", ScanStatus.INFECTED)
    assert event.scan_signature == clamd_socket.detected_as
    assert any(clamd_socket.detected_as in r.getMessage() for r in caplog.records)
    upload_dirs.assert_nothing_kept()


def test_eicar_through_the_form_shows_the_same_detail(signed_in, clamd_socket, upload_dirs):
    response = form_upload(signed_in, "notes.txt", clamd_socket.eicar)
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert b"malware" in response.content
    assert only_event().code == "malware_detected"
    upload_dirs.assert_nothing_kept()


def test_a_clean_file_is_stored_and_its_event_says_it_was_scanned(api, clamd_socket, upload_dirs):
    response = api_upload(api, "notes.txt", CLEAN)
    assert response.status_code == HTTPStatus.CREATED
    assert (only_event().code, only_event().scan) == ("accepted", ScanStatus.CLEAN)
    assert len(upload_dirs.stored_files()) == 1


@pytest.fixture
def scanner_down(settings, tmp_path):
    """A configured scanner that is not there (nothing listens on the socket)."""
    settings.CLAMD_SOCKET = str(tmp_path / "no-clamd.sock")
    settings.CLAMD_HOST = ""


def test_required_scan_with_the_scanner_down_is_503_and_nothing_stored(
    api, signed_in, scanner_down, actor, default_policy, upload_dirs
):
    change_policy(actor, default_policy, scan="required")
    response = api_upload(api, "notes.txt", CLEAN)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "scanner_unavailable"
    page = form_upload(signed_in, "notes.txt", CLEAN)
    assert page.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert b"cannot be checked for malware" in page.content
    assert sorted(e.scan for e in UploadEvent.objects.all()) == [
        ScanStatus.UNAVAILABLE,
        ScanStatus.UNAVAILABLE,
    ]
    upload_dirs.assert_nothing_kept()


def test_required_scan_without_any_scanner_configured_fails_closed(
    api, settings, actor, default_policy, upload_dirs
):
    settings.CLAMD_SOCKET = settings.CLAMD_HOST = ""
    change_policy(actor, default_policy, scan="required")
    response = api_upload(api, "notes.txt", CLEAN)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert only_event().scan == ScanStatus.NOT_CONFIGURED
    upload_dirs.assert_nothing_kept()


def test_scan_on_with_the_scanner_down_accepts_and_records_no_scan(api, scanner_down, upload_dirs):
    response = api_upload(api, "notes.txt", CLEAN)  # the seeded default policy scans "on"
    assert response.status_code == HTTPStatus.CREATED
    assert (only_event().code, only_event().scan) == ("accepted", ScanStatus.UNAVAILABLE)
    assert Upload.objects.count() == 1


def test_scan_off_never_asks_the_scanner(api, clamd_socket, actor, default_policy, upload_dirs):
    change_policy(actor, default_policy, scan="off")
    response = api_upload(api, "notes.txt", clamd_socket.eicar)
    assert response.status_code == HTTPStatus.CREATED  # the admin switched scanning off
    assert only_event().scan == ""


def test_a_file_over_the_scanners_limit_is_refused_when_the_scan_is_required(
    api, clamd_socket, settings, actor, default_policy, upload_dirs
):
    settings.CLAMD_STREAM_MAX_BYTES = 16
    change_policy(actor, default_policy, scan="required")
    response = api_upload(api, "notes.txt", CLEAN)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "file_too_large"
    assert "malware scanner" in response.json()["detail"]
    assert only_event().scan == ScanStatus.TOO_LARGE
    upload_dirs.assert_nothing_kept()


def test_a_file_over_the_scanners_limit_is_kept_unscanned_when_the_scan_is_on(
    api, clamd_socket, settings, upload_dirs
):
    settings.CLAMD_STREAM_MAX_BYTES = 16
    response = api_upload(api, "notes.txt", CLEAN)
    assert response.status_code == HTTPStatus.CREATED
    assert only_event().scan == ScanStatus.TOO_LARGE


def test_clamds_own_stream_limit_counts_as_too_large(api, clamd_socket, settings, upload_dirs):
    settings.CLAMD_STREAM_MAX_BYTES = 8 * 1024 * 1024  # ours allows it; clamd's 1 MiB does not
    response = api_upload(api, "notes.txt", b"line of text\n" * 200_000)
    assert response.status_code == HTTPStatus.CREATED
    assert only_event().scan == ScanStatus.TOO_LARGE


@pytest.mark.parametrize(("host", "port"), [("a..b", 3310), ("127.0.0.1", 70000)])
def test_an_unusable_scanner_address_counts_as_unavailable(api, settings, host, port, upload_dirs):
    settings.CLAMD_SOCKET, settings.CLAMD_HOST, settings.CLAMD_PORT = "", host, port
    response = api_upload(api, "notes.txt", CLEAN)  # "on": accepted, not a 500
    assert response.status_code == HTTPStatus.CREATED
    assert only_event().scan == ScanStatus.UNAVAILABLE
