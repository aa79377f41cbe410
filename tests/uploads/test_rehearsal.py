"""Report-only policies: what they would have refused is accepted and recorded as such, except
malware and a required scan that cannot run; the admin sees the last 7 days' would-be refusals."""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from tests.uploads import make_images
from tests.uploads.conftest import only_event
from tests.uploads.ops import api_upload, form_upload, make_policy, token_client_for
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def rehearsal(actor):
    """Text files only, at most 1 KiB and 2 files a day, rehearsed."""
    return make_policy(
        actor,
        "rehearsal",
        mode="report_only",
        max_file_size_bytes=1024,
        quota_files=2,
    )


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


def test_a_type_the_policy_would_refuse_is_accepted_and_recorded(
    api, rehearsal, upload_dirs, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="portcullis.uploads")
    png = make_images.benign_png()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_upload(api, "photo.png", png, policy="rehearsal")
    assert response.status_code == HTTPStatus.CREATED
    event = only_event()
    assert (event.code, event.would_refuse_code) == ("accepted", "extension_not_allowed")
    stored = Upload.objects.get()
    assert (stored.content_type, stored.reencoded) == ("image/png", False)  # kept as it came
    assert upload_dirs.stored_files()[0].read_bytes() == png
    assert any("would_refuse=extension_not_allowed" in r.getMessage() for r in caplog.records)


def test_a_file_over_the_size_limit_is_received_whole_and_recorded(api, rehearsal, upload_dirs):
    content = b"a line of text\n" * 200  # 3,000 bytes, over the 1 KiB limit
    response = api_upload(api, "big.txt", content, policy="rehearsal")
    assert response.status_code == HTTPStatus.CREATED
    assert response.json()["size"] == len(content)
    assert only_event().would_refuse_code == "file_too_large"
    assert upload_dirs.stored_files()[0].read_bytes() == content


def test_the_quota_is_rehearsed_too(api, rehearsal, upload_dirs):
    for _ in range(3):
        assert api_upload(api, "a.txt", b"hi\n", policy="rehearsal").status_code == 201
    codes = [e.would_refuse_code for e in UploadEvent.objects.order_by("created_at", "id")]
    assert codes == ["", "", "quota_exceeded"]
    assert Upload.objects.count() == 3


def test_an_unsafe_name_is_kept_under_a_safe_one(api, rehearsal, upload_dirs):
    response = api_upload(api, "../../etc/passwd.txt", b"hi\n", policy="rehearsal")
    assert response.status_code == HTTPStatus.CREATED
    assert "/" not in response.json()["filename"]
    assert only_event().would_refuse_code == "filename_invalid"


def test_the_form_rehearses_the_same_way(signed_in, rehearsal, upload_dirs):
    response = form_upload(signed_in, "photo.png", make_images.benign_png(), policy="rehearsal")
    assert response.status_code == HTTPStatus.FOUND
    assert only_event().would_refuse_code == "extension_not_allowed"


def test_malware_is_refused_even_in_a_rehearsal(api, rehearsal, clamd_socket, upload_dirs):
    response = api_upload(api, "notes.txt", clamd_socket.eicar, policy="rehearsal")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json()["code"] == "malware_detected"
    upload_dirs.assert_nothing_kept()


def test_malware_in_a_file_the_rehearsal_would_refuse_anyway_is_still_refused(
    api, rehearsal, clamd_socket, upload_dirs
):
    response = api_upload(api, "notes.pdf", clamd_socket.eicar, policy="rehearsal")
    assert response.json()["code"] == "malware_detected"
    upload_dirs.assert_nothing_kept()


def test_a_required_scan_that_cannot_run_is_enforced_in_a_rehearsal(
    api, actor, settings, tmp_path, upload_dirs
):
    settings.CLAMD_SOCKET = str(tmp_path / "nothing-here.sock")
    make_policy(actor, "strict-rehearsal", mode="report_only", scan="required")
    response = api_upload(api, "notes.txt", b"hi\n", policy="strict-rehearsal")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    upload_dirs.assert_nothing_kept()


def test_who_may_upload_is_enforced_in_a_rehearsal(api, actor, upload_dirs):
    make_policy(actor, "staff-rehearsal", mode="report_only", upload_access="staff")
    response = api_upload(api, "notes.txt", b"hi\n", policy="staff-rehearsal")
    assert response.status_code == HTTPStatus.FORBIDDEN
    upload_dirs.assert_nothing_kept()


def test_an_enforcing_policy_still_refuses(api, upload_dirs):
    response = api_upload(api, "photo.exe", b"MZ\x90\x00")
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    upload_dirs.assert_nothing_kept()


def test_the_admin_policy_page_shows_the_last_seven_days_of_would_be_refusals(
    api, rehearsal, editor, client, upload_dirs
):
    api_upload(api, "photo.png", make_images.benign_png(), policy="rehearsal")
    api_upload(api, "other.png", make_images.benign_png(), policy="rehearsal")
    api_upload(api, "big.txt", b"x" * 2000, policy="rehearsal")
    old = api_upload(api, "old.png", make_images.benign_png(), policy="rehearsal")
    assert old.status_code == HTTPStatus.CREATED
    UploadEvent.objects.filter(filename="old.png").update(
        created_at=timezone.now() - timedelta(days=8)
    )
    client.force_login(editor)
    url = f"/admin/policies/uploadpolicy/{rehearsal.pk}/change/"
    counts_only = client.get(url).content.decode()  # a policy editor who may not see events
    assert "extension_not_allowed" in counts_only.split('class="rehearsal-counts"')[1]
    assert "would_refuse_code=" not in counts_only
    assert "rehearsal-latest" not in counts_only
    assert "photo.png" not in counts_only
    editor.user_permissions.add(Permission.objects.get(codename="view_uploadevent"))
    page = client.get(url).content.decode()
    assert "would_refuse_code=extension_not_allowed" in page  # links to the events
    link = re.search(r'href="([^"]*would_refuse_code=extension_not_allowed[^"]*)"', page)[1]
    events = client.get(html.unescape(link)).content.decode()  # the last 7 days only
    assert "photo.png" in events
    assert "other.png" in events
    assert "old.png" not in events
    assert "big.txt" not in events
    counts = page.split('class="rehearsal-counts"')[1].split("</table>")[0]
    assert "<td>2</td>" in counts  # the two recent PNGs, not the 8-day-old one
    assert "file_too_large" in counts
    latest = page.split('class="rehearsal-latest"')[1].split("</table>")[0]
    assert "photo.png" in latest
    assert "old.png" not in latest
