"""The change-safety story end to end, three browsers at once: an admin lowers the default
policy's size limit with a reason; a user's file over the new limit is stopped by the page's own
check and, with JavaScript off, refused by the server, each naming the limit; the admin rolls the
change back; the same file then uploads, its progress bar reaching 100%. Every page is watched
for CSP violations and console errors (tests/browser/conftest.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from policies.models import MIB, AuditEntry, UploadPolicy
from tests.browser.conftest import allow_refusals, screenshot, watched_page
from tests.browser.test_headers_in_browser import log_in
from tests.conftest import PASSWORD
from uploads.models import Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFUSAL = "The file is larger than 1 MiB, the most this upload accepts."


def lower_the_limit(admin, live_server) -> None:
    admin.goto(live_server.url + "/admin/policies/uploadpolicy/")
    admin.get_by_role("link", name="default", exact=True).click()
    admin.fill("#id_max_file_size_bytes", str(MIB))
    admin.fill("#id_reason", "Phones send 1 MiB at most.")
    admin.fill("#id_rollback_note", "Roll back this entry if uploads start failing.")
    admin.click("input[name=_save]")
    admin.wait_for_url("**/admin/policies/uploadpolicy/")


def see_the_entry_and_roll_it_back(admin, live_server) -> None:
    policy = UploadPolicy.objects.get(slug="default")
    admin.goto(f"{live_server.url}/admin/policies/uploadpolicy/{policy.pk}/history/")
    latest = admin.locator(".policies-entry").first
    assert "Phones send 1 MiB at most." in latest.inner_text()
    assert latest.locator(".policies-before del").inner_text() == f"10 MiB ({10 * MIB} bytes)"
    assert latest.locator(".policies-after ins").inner_text() == f"1 MiB ({MIB} bytes)"
    screenshot(admin, "scenario-history-diff")
    latest.get_by_role("link", name="Roll back this change").click()
    admin.fill("#id_reason", "Refusing real photos; back to 10 MiB.")
    admin.get_by_role("button", name="Roll back entry").click()
    admin.wait_for_url("**/history/")


def test_a_lowered_limit_refuses_until_it_is_rolled_back(
    page, browser, live_server, django_user_model, owner, upload_dirs, tmp_path
):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    photo = tmp_path / "site-plan.txt"
    photo.write_bytes(b"plan " * (MIB // 2))  # 2.5 MiB of text
    admin = page
    log_in(admin, live_server, "root", "/admin/login/")
    lower_the_limit(admin, live_server)
    assert UploadPolicy.objects.get(slug="default").max_file_size_bytes == MIB

    with watched_page(browser) as user:
        log_in(user, live_server, "owner")
        user.goto(live_server.url + "/upload/")
        sent = []
        user.on("request", lambda r: "/api/v1/uploads/" in r.url and sent.append(r))
        user.get_by_label("File", exact=True).set_input_files(photo)
        status = user.locator(".file .file-status")
        assert status.inner_text() == REFUSAL
        user.get_by_role("button", name="Upload", exact=True).click()
        assert sent == []  # stopped before anything was sent

        with watched_page(browser, javascript=False) as plain:
            allow_refusals(plain, "/upload/")  # the refusal page's 413
            log_in(plain, live_server, "owner")
            plain.goto(live_server.url + "/upload/")
            plain.get_by_label("File", exact=True).set_input_files(photo)
            plain.get_by_role("button", name="Upload", exact=True).click()
            plain.wait_for_load_state()
            assert plain.locator("#file-error").inner_text() == REFUSAL
        assert not Upload.objects.exists()

        entries = AuditEntry.objects.count()
        see_the_entry_and_roll_it_back(admin, live_server)
        assert AuditEntry.objects.count() == entries + 1
        assert UploadPolicy.objects.get(slug="default").max_file_size_bytes == 10 * MIB

        user.reload()
        user.get_by_label("File", exact=True).set_input_files(photo)
        assert status.inner_text() == "Ready to upload."
        user.get_by_role("button", name="Upload", exact=True).click()
        expect(user.get_by_role("status").locator("p")).to_have_text("Uploaded site-plan.txt.")
        bar = user.get_by_role("progressbar", name="Upload of site-plan.txt")
        assert bar.evaluate("bar => [bar.value, bar.max]") == [100, 100]
        screenshot(user, "scenario-upload-after-rollback")
        [upload] = Upload.objects.all()
        assert (upload.original_name, upload.size_bytes) == ("site-plan.txt", photo.stat().st_size)
