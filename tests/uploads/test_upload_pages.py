"""The end-user pages as the server renders them: the upload form's limits for its script, the
no-JS refusals, My uploads and the delete confirmation."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.staticfiles import finders

from tests.uploads.http import file_part, multipart
from tests.uploads.ops import change_policy, make_policy
from uploads.models import Upload

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def form_of(page: str) -> str:
    form = re.search(r"<form method=\"post\" enctype=\"multipart/form-data\"[^>]*>", page)
    assert form, "the upload form"
    return form.group(0)


def attribute(tag: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    assert found, name
    return found.group(1)


def test_the_form_tells_its_script_the_policys_limits(signed_in, default_policy, actor):
    change_policy(
        actor,
        default_policy,
        max_file_size_bytes=MIB,
        allowed_types=["text/plain"],
        allowed_extensions=["txt"],
    )
    form = form_of(signed_in.get("/upload/").content.decode())
    assert attribute(form, "data-upload-endpoint") == "/api/v1/uploads/?policy=default"
    assert attribute(form, "data-max-file-bytes") == str(MIB)
    assert attribute(form, "data-max-file-size") == "1 MiB"
    assert attribute(form, "data-max-files") == "1"
    assert attribute(form, "data-extensions") == "txt"
    assert attribute(form, "data-prechecks") == "on"
    assert attribute(form, "data-mine-url") == "/uploads/"


def test_another_target_posts_to_its_own_policy(signed_in, actor):
    make_policy(
        actor,
        "reports",
        max_files_per_request=3,
        allowed_types=["text/plain", "text/csv"],
        allowed_extensions=["txt", "csv"],
    )
    page = signed_in.get("/upload/reports/").content.decode()
    form = form_of(page)
    assert attribute(form, "data-upload-endpoint") == "/api/v1/uploads/?policy=reports"
    assert attribute(form, "data-max-files") == "3"
    assert attribute(form, "data-extensions") == "txt csv"
    assert "Files (up to 3)" in page
    assert "Drop files here" in page


def test_a_rehearsing_policy_is_not_prechecked_in_the_browser(signed_in, actor):
    """It refuses nothing itself, so the page must not refuse for it either."""
    make_policy(actor, "trial", mode="report_only")
    form = form_of(signed_in.get("/upload/trial/").content.decode())
    assert attribute(form, "data-prechecks") == "off"


def test_the_page_loads_its_script_and_styles_from_static_files(signed_in):
    page = signed_in.get("/upload/").content.decode()
    assert '<script src="/static/uploads/upload.js" defer></script>' in page
    assert '<link rel="stylesheet" href="/static/portcullis.css">' in page
    assert finders.find("uploads/upload.js")
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []  # no inline script
    assert "<style" not in page
    assert " style=" not in page


def test_without_javascript_the_drop_zone_stays_hidden_and_the_input_is_the_control(signed_in):
    page = signed_in.get("/upload/").content.decode()
    zone = re.search(r"<div class=\"drop-zone\"[^>]*>", page)
    assert zone
    assert " hidden" in zone.group(0)
    assert '<label for="id_file">File</label>' in page
    file_input = re.search(r"<input type=\"file\"[^>]*>", page, re.S).group(0)
    assert 'id="id_file"' in file_input
    assert "required" in file_input


def test_a_file_over_the_limit_sent_without_javascript_is_refused_naming_the_limit(
    signed_in, default_policy, actor, upload_dirs
):
    change_policy(actor, default_policy, max_file_size_bytes=MIB)
    body, content_type = multipart(file_part("minutes.txt", b"a" * (MIB + MIB // 2)))
    response = signed_in.post("/upload/", body, content_type=content_type)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    page = response.content.decode()
    error = re.search(r'<p id="file-error" class="error" role="alert">(.*?)</p>', page, re.S)
    assert error
    assert error.group(1) == "The file is larger than 1 MiB, the most this upload accepts."
    assert "Up to 1 MiB each." in page
    assert 'aria-invalid="true"' in page  # the file input says it holds the refused choice
    upload_dirs.assert_nothing_kept()


def test_my_uploads_lists_name_size_type_and_date_with_download_and_delete(signed_in, owner):
    body, content_type = multipart(file_part("Grüße.txt", b"hello\n"))
    signed_in.post("/upload/", body, content_type=content_type)
    upload = Upload.objects.get(owner=owner)
    page = signed_in.get("/uploads/").content.decode()
    row = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    assert '<td class="name">Grüße.txt</td>' in row
    assert ">6 bytes</td>" in row
    assert ">Plain text</td>" in row
    assert f'datetime="{upload.created_at.isoformat()}"' in row
    assert f'href="/uploads/{upload.pk}/download/"' in row
    assert f'href="/uploads/{upload.pk}/delete/"' in row
    assert "You have not uploaded anything yet." not in page


def test_my_uploads_without_files_says_so_and_offers_the_upload_page(signed_in):
    page = signed_in.get("/uploads/").content.decode()
    assert "You have not uploaded anything yet." in page
    assert '<a class="button" href="/upload/">Upload a file</a>' in page
    assert "<table" not in page


def test_the_delete_confirmation_describes_the_file_and_deletes_nothing_yet(signed_in, owner):
    body, content_type = multipart(file_part("notes.txt", b"x" * 2048))
    signed_in.post("/upload/", body, content_type=content_type)
    upload = Upload.objects.get(owner=owner)
    page = signed_in.get(f"/uploads/{upload.pk}/delete/").content.decode()
    assert "<dd>2 KiB</dd>" in page
    assert '<button type="submit" class="button-danger">Delete</button>' in page
    assert 'href="/uploads/">Keep it</a>' in page
    assert Upload.objects.filter(pk=upload.pk).exists()


def test_signed_in_pages_link_to_upload_and_my_uploads(signed_in):
    page = signed_in.get("/").content.decode()
    nav = re.search(r'<nav aria-label="Site">(.*?)</nav>', page, re.S).group(1)
    assert '<a href="/upload/">Upload</a>' in nav
    assert '<a href="/uploads/">My uploads</a>' in nav
    assert '<a class="skip-link" href="#main">Skip to content</a>' in page
