"""Upload operations seen in a real browser: the rehearsal panel on a policy's admin page, and
the form's one-time token making a resubmitted form one upload."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.browser.conftest import csp_violations, screenshot, watched_page
from tests.browser.test_headers_in_browser import log_in
from tests.uploads import make_images
from tests.uploads.ops import api_upload, make_policy, token_client_for
from uploads.models import Upload, UploadEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_policy_page_shows_what_a_rehearsal_would_have_refused(
    page, live_server, owner, editor, actor, upload_dirs
):
    policy = make_policy(actor, "rehearsal", mode="report_only", max_file_size_bytes=1024)
    client = token_client_for(owner)
    api_upload(client, "photo.png", make_images.benign_png(), policy="rehearsal")
    api_upload(client, "big.txt", b"x" * 4000, policy="rehearsal")
    assert UploadEvent.objects.exclude(would_refuse_code="").count() == 2
    editor.user_permissions.add(Permission.objects.get(codename="view_uploadevent"))
    log_in(page, live_server, "editor", "/admin/login/")
    page.goto(f"{live_server.url}/admin/policies/uploadpolicy/{policy.pk}/change/")
    panel = page.locator(".rehearsal-counts")
    assert panel.is_visible()
    assert "extension_not_allowed" in panel.inner_text()
    assert "file_too_large" in panel.inner_text()
    assert "photo.png" in page.locator(".rehearsal-latest").inner_text()
    screenshot(page, "admin-rehearsal-panel")
    page.get_by_role("link", name="extension_not_allowed").click()
    page.wait_for_load_state()
    assert "photo.png" in page.locator("#result_list").inner_text()
    assert "big.txt" not in page.locator("#result_list").inner_text()
    assert csp_violations(page) == []


def test_submitting_the_same_form_twice_makes_one_upload(
    browser, live_server, owner, upload_dirs, tmp_path
):
    # The form's own post: with JavaScript the page sends each file to the API instead.
    with watched_page(browser, javascript=False) as page:
        resubmit_the_form(page, live_server, tmp_path)
    assert Upload.objects.count() == 1


def resubmit_the_form(page, live_server, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"minutes of the meeting\n")
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    page.set_input_files("#id_file", str(notes))
    form_data = page.evaluate(
        """() => {
            const form = document.querySelector("form.upload-form");
            return Object.fromEntries(new FormData(form).entries()
                .filter(([name, value]) => typeof value === "string"));
        }"""
    )
    page.click("main button[type=submit]")
    page.wait_for_url(live_server.url + "/uploads/")
    # The browser sends the same form again (a back button and a second click, a flaky network).
    again = page.request.post(
        live_server.url + "/upload/",
        multipart={
            **form_data,
            "file": {"name": "notes.txt", "mimeType": "text/plain", "buffer": notes.read_bytes()},
        },
        headers={"Referer": live_server.url + "/upload/"},
    )
    assert again.ok
    assert "Already uploaded notes.txt" in again.text()
    screenshot(page, "my-uploads-after-double-submit")
    assert csp_violations(page) == []
