"""The upload pages as a user meets them in a real browser, under the seeded strict CSP: drag and
drop with per-file progress, the checks made before anything is sent, the same page without
JavaScript, My uploads, deleting, the keyboard alone, and a 375 px wide phone screen."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from policies.models import MIB, UploadPolicy
from tests.browser.conftest import allow_refusals, screenshot, watched_page
from tests.browser.test_headers_in_browser import log_in
from tests.conftest import PASSWORD
from tests.uploads.ops import change_policy, make_policy
from uploads.models import Upload, UploadStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTES = "minutes of the meeting\n"
TOO_BIG = "The file is larger than 1 MiB, the most this upload accepts."


@pytest.fixture
def no_js_page(browser):
    with watched_page(browser, javascript=False) as new_page:
        yield new_page


def api_requests(page) -> list:
    """Every upload request the page sends to the API, as it is sent."""
    sent = []
    page.on("request", lambda r: "/api/v1/uploads/" in r.url and sent.append(r))
    return sent


def drop_files(page, files: list[tuple[str, str]]) -> None:
    """Drop text files (name, content) on the drop zone, as a drag from the desktop would."""
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of files) {
                transfer.items.add(new File([text], name, {type: "text/plain"}));
            }
            return transfer;
        }""",
        files,
    )
    # A browser lets a drop happen only where dragover was cancelled: check the zone does that.
    accepts = page.locator(".drop-zone").evaluate(
        """(zone, transfer) => {
            const over = new DragEvent("dragover", {dataTransfer: transfer, cancelable: true});
            zone.dispatchEvent(over);
            return over.defaultPrevented;
        }""",
        transfer,
    )
    assert accepts, "the drop zone does not accept a drag"
    page.dispatch_event(".drop-zone", "drop", {"dataTransfer": transfer})


def stored_uploads():
    return Upload.objects.filter(status=UploadStatus.STORED)


def summary_of(page):
    """What the page says once every file has its answer."""
    return page.get_by_role("status").locator("p")


def file_row(page, name: str):
    name_only = re.compile(rf"^{re.escape(name)}$")
    return page.locator(".file", has=page.locator(".file-name", has_text=name_only))


def limit_default_policy(actor, size: int) -> None:
    change_policy(actor, UploadPolicy.objects.get(slug="default"), max_file_size_bytes=size)


def downloaded_bytes(page, link) -> bytes:
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_bytes()


def delete_from_my_uploads(page, name: str) -> None:
    page.get_by_role("link", name=f"Delete {name}").click()
    page.wait_for_url(re.compile(r"/uploads/[0-9a-f-]+/delete/$"))
    assert page.get_by_role("heading", name=f"Delete {name}?").is_visible()
    screenshot(page, "delete-confirm")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r"/uploads/$"))
    assert page.get_by_role("status").inner_text() == f"Deleted {name}."
    assert page.get_by_text("You have not uploaded anything yet.").is_visible()


def test_a_dropped_file_uploads_with_its_progress_and_is_downloaded_and_deleted(
    page, live_server, owner, upload_dirs
):
    sent = api_requests(page)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    screenshot(page, "upload-page")
    drop_files(page, [("notes.txt", NOTES)])
    row = file_row(page, "notes.txt")
    assert row.locator(".file-size").inner_text() == "23 bytes"
    assert row.locator(".file-status").inner_text() == "Ready to upload."
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(summary_of(page)).to_have_text("Uploaded notes.txt.")
    assert row.locator(".file-status").inner_text() == "Uploaded."
    progress = row.get_by_role("progressbar", name="Upload of notes.txt")
    assert progress.is_visible()
    assert progress.evaluate("bar => [bar.value, bar.max]") == [100, 100]
    screenshot(page, "upload-progress-done")
    [request] = sent
    assert request.url == live_server.url + "/api/v1/uploads/?policy=default"
    uuid.UUID(request.headers["idempotency-key"])
    assert request.headers["x-csrftoken"]

    page.get_by_role("link", name="Go to My uploads").click()
    page.wait_for_url(live_server.url + "/uploads/")
    cells = page.get_by_role("row", name=re.compile("notes.txt")).get_by_role("cell")
    assert cells.all_inner_texts()[:3] == ["notes.txt", "23 bytes", "Plain text"]
    assert re.fullmatch(r"\d+ \w+ 20\d\d, \d\d:\d\d UTC", cells.nth(3).inner_text())
    screenshot(page, "my-uploads")
    assert downloaded_bytes(page, page.get_by_role("link", name="Download notes.txt")) == (
        NOTES.encode()
    )
    delete_from_my_uploads(page, "notes.txt")
    screenshot(page, "my-uploads-empty")
    assert not stored_uploads().exists()


def test_a_file_over_the_limit_is_stopped_before_it_is_sent(
    page, live_server, owner, actor, upload_dirs
):
    limit_default_policy(actor, MIB)
    sent = api_requests(page)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    assert "Up to 1 MiB each." in page.locator("#file-hint").inner_text()
    drop_files(page, [("minutes.txt", "a" * (MIB + MIB // 2))])
    row = file_row(page, "minutes.txt")
    assert row.locator(".file-size").inner_text() == "1.5 MiB"
    assert row.locator(".file-status").inner_text() == TOO_BIG
    page.get_by_role("button", name="Upload", exact=True).click()
    assert page.locator(".form-message").inner_text() == (
        "This file cannot be uploaded: choose another."
    )
    screenshot(page, "upload-refused-precheck")
    assert sent == []
    upload_dirs.assert_nothing_kept()


def test_without_javascript_the_same_form_refuses_over_the_limit_then_uploads(
    no_js_page, live_server, owner, actor, upload_dirs, tmp_path
):
    page = no_js_page
    limit_default_policy(actor, MIB)
    big = tmp_path / "minutes.txt"
    big.write_bytes(b"a" * (MIB + MIB // 2))
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    assert page.locator(".drop-zone").is_hidden()
    file_input = page.get_by_label("File", exact=True)
    assert file_input.is_visible()

    allow_refusals(page, "/upload/")  # the refusal's 413 page
    file_input.set_input_files(big)
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("#file-error").inner_text() == TOO_BIG
    screenshot(page, "upload-refused-nojs")
    upload_dirs.assert_nothing_kept()

    page.get_by_label("File", exact=True).set_input_files(notes)
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(live_server.url + "/uploads/")
    assert page.get_by_role("status").inner_text() == "Uploaded notes.txt."
    link = page.get_by_role("link", name="Download notes.txt")
    assert downloaded_bytes(page, link) == NOTES.encode()
    delete_from_my_uploads(page, "notes.txt")


def test_a_form_for_several_files_checks_count_and_names_and_reports_each_answer(
    page, live_server, owner, actor, upload_dirs
):
    make_policy(actor, "minutes", max_files_per_request=2)
    allow_refusals(page, "/api/v1/uploads/")  # the server refuses one file
    sent = api_requests(page)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/minutes/")
    drop_files(page, [("a.txt", "first\n"), ("b.txt", "second\n"), ("c.txt", "third\n")])
    message = page.locator(".form-message")
    assert message.inner_text() == (
        "This upload accepts 2 files at a time: remove 1 before uploading."
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    assert sent == []

    page.get_by_role("button", name="Remove c.txt").click()
    assert message.inner_text() == ""
    assert page.get_by_role("button", name="Remove b.txt").evaluate(
        "button => button === document.activeElement"
    )
    drop_files(page, [("tool.exe", "MZ"), ("page.txt", "<html><script>alert(1)</script>")])
    assert file_row(page, "tool.exe").locator(".file-status").inner_text() == (
        "Files ending in .exe are not accepted here. Accepted: .txt."
    )
    assert "2 files at a time: remove 1" in message.inner_text()  # page.txt is the third
    page.get_by_role("button", name="Remove a.txt").click()
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(summary_of(page)).to_have_text("Uploaded 1 of 2 files; see why next to the other.")
    assert file_row(page, "b.txt").locator(".file-status").inner_text() == "Uploaded."
    refused = file_row(page, "page.txt").locator(".file-status").inner_text()
    assert "HTML page" in refused
    screenshot(page, "upload-several")
    assert [r.url.endswith("?policy=minutes") for r in sent] == [True, True]
    assert len({r.headers["idempotency-key"] for r in sent}) == 2
    assert list(Upload.objects.values_list("original_name", flat=True)) == ["b.txt"]


def test_a_lost_connection_can_be_retried_and_stores_the_file_once(
    page, live_server, owner, upload_dirs
):
    page.expected_errors.append(re.compile(r"Failed to load resource: net::ERR_FAILED"))
    sent = api_requests(page)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    page.route("**/api/v1/uploads/**", lambda route: route.abort())
    drop_files(page, [("notes.txt", NOTES)])
    upload = page.get_by_role("button", name="Upload", exact=True)
    upload.click()
    status = file_row(page, "notes.txt").locator(".file-status")
    expect(status).to_have_text(
        "The connection failed before the upload finished. Press Upload to try again."
    )
    page.unroute("**/api/v1/uploads/**")
    upload.click()
    expect(status).to_have_text("Uploaded.")
    first, second = (r.headers["idempotency-key"] for r in sent)
    assert first == second
    assert stored_uploads().count() == 1


def tab_to(page, target, presses: int = 30) -> None:
    """Press Tab until `target` has the focus, and check the focus can be seen there."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("node => node === document.activeElement"):
            style, width = target.evaluate(
                "node => [getComputedStyle(node).outlineStyle, getComputedStyle(node).outlineWidth]"
            )
            assert style != "none"
            assert width != "0px"
            return
    raise AssertionError(f"Tab never reached {target}")


def test_the_whole_upload_flow_with_the_keyboard_alone(
    page, live_server, owner, upload_dirs, tmp_path
):
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    page.goto(live_server.url + "/accounts/login/")
    screenshot(page, "login")
    # The username field takes the focus as the page opens (autofocus): wait for it, as a person
    # would see the caret before typing.
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("owner")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/")
    screenshot(page, "home")

    tab_to(page, page.get_by_role("link", name="Upload", exact=True))
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/upload/")
    # Playwright intercepts file dialogs once something listens for them; listening this early
    # means the interception is in place before the key press below opens one.
    page.on("filechooser", lambda chooser: None)
    tab_to(page, page.get_by_role("button", name="Drop a file here or choose one"))
    screenshot(page, "upload-keyboard-focus")
    # Enter opens the operating system's file dialog; a person picks the file there, which
    # Playwright stands in for by answering the dialog it intercepts.
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(notes)
    assert file_row(page, "notes.txt").is_visible()
    tab_to(page, page.get_by_role("button", name="Upload", exact=True))
    page.keyboard.press("Enter")
    expect(summary_of(page)).to_have_text("Uploaded notes.txt.")

    tab_to(page, page.get_by_role("link", name="Go to My uploads"))
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/uploads/")
    tab_to(page, page.get_by_role("link", name="Download notes.txt"))
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert Path(download.value.path()).read_bytes() == NOTES.encode()
    tab_to(page, page.get_by_role("link", name="Delete notes.txt"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/delete/$"))
    tab_to(page, page.get_by_role("button", name="Delete"))
    page.keyboard.press("Space")
    page.wait_for_url(live_server.url + "/uploads/")
    assert page.get_by_text("You have not uploaded anything yet.").is_visible()
    assert not stored_uploads().exists()
    tab_to(page, page.get_by_role("button", name="Log out"))
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/accounts/logout/")
    assert page.get_by_role("heading", name="You are logged out").is_visible()
    screenshot(page, "logged-out")


def assert_fits(page, width: int = 375) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_pages_fit_a_375px_phone(page, live_server, owner, actor, upload_dirs):
    limit_default_policy(actor, MIB)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(live_server.url + "/accounts/login/")
    assert_fits(page)
    screenshot(page, "login-375")
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    long_name = "Quarterly-report-of-the-regional-committee-on-safe-uploads-2026.txt"
    drop_files(page, [(long_name, NOTES)])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(summary_of(page)).to_have_text(f"Uploaded {long_name}.")
    drop_files(page, [("minutes.txt", "a" * (MIB + 1))])
    row = file_row(page, "minutes.txt")
    assert row.locator(".file-status").inner_text() == TOO_BIG
    assert row.locator(".file-size").inner_text() == "1 MiB (1,048,577 bytes)"
    assert_fits(page)
    screenshot(page, "upload-page-375")
    page.goto(live_server.url + "/uploads/")
    assert page.get_by_role("cell", name=long_name, exact=True).is_visible()
    assert_fits(page)
    screenshot(page, "my-uploads-375")


def test_the_progress_bar_moves_while_the_file_is_sent(page, live_server, owner, upload_dirs):
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(  # a slow uplink: about two seconds for this file
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": MIB},
    )
    drop_files(page, [("survey.txt", "a" * 2 * MIB)])
    file_row(page, "survey.txt").evaluate(
        """row => {
            window.progressSeen = [];
            new MutationObserver(() => {
                const bar = row.querySelector("progress");
                if (bar) window.progressSeen.push(bar.value);
            }).observe(row, {attributes: true, childList: true, subtree: true});
        }"""
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(summary_of(page)).to_have_text("Uploaded survey.txt.")
    seen = page.evaluate("window.progressSeen")
    assert any(0 < value < 100 for value in seen), seen  # it moved, not just jumped to 100
    assert seen[-1] == 100


def test_a_file_name_is_shown_as_text_never_as_markup(page, live_server, owner, upload_dirs):
    name = "<img src=x onerror=alert(1)>.txt"
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
    log_in(page, live_server, "owner")
    page.goto(live_server.url + "/upload/")
    drop_files(page, [(name, NOTES)])
    assert file_row(page, name).locator(".file-name").inner_text() == name
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(summary_of(page)).to_have_text(f"Uploaded {name}.")
    assert page.locator("main img").count() == 0
    page.goto(live_server.url + "/uploads/")
    assert page.get_by_role("cell", name=name, exact=True).is_visible()
    assert page.locator("main img").count() == 0
