"""Uploading through the form in a real browser, under the seeded strict CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import allow_refusals, csp_violations, screenshot
from tests.browser.test_headers_in_browser import log_in
from tests.uploads import make_images
from uploads.models import Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_uploads_a_picture_and_downloads_it(page, live_server, owner, upload_dirs, tmp_path):
    picture = tmp_path / "Strand im Mai.png"
    picture.write_bytes(make_images.benign_png())
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    screenshot(page, "upload-form")
    page.set_input_files("#id_file", str(picture))
    page.click("main button[type=submit]")
    expect(page.get_by_role("status").locator("p")).to_have_text("Uploaded Strand im Mai.png.")
    page.get_by_role("link", name="Go to My uploads").click()
    page.wait_for_url(live_server.url + "/uploads/")
    screenshot(page, "my-uploads-picture")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download Strand im Mai.png").click()
    download = download_info.value
    assert download.suggested_filename == "Strand im Mai.png"
    assert Upload.objects.get().owner == owner
    assert csp_violations(page) == []


def test_a_refused_file_shows_why_next_to_it(page, live_server, owner, upload_dirs, tmp_path):
    disguised = tmp_path / "notes.txt"
    disguised.write_bytes(b"<html><body><script>alert(1)</script></body></html>")
    allow_refusals(page, "/api/v1/uploads/")  # the page sends it through the API
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    page.set_input_files("#id_file", str(disguised))
    page.click("main button[type=submit]")
    status = page.locator(".file", has_text="notes.txt").locator(".file-status")
    expect(status).to_contain_text("HTML page")
    screenshot(page, "upload-refused")
    upload_dirs.assert_nothing_kept()
    assert csp_violations(page) == []
