"""The upload pages: the same pipeline as the API, behind login and CSRF."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.uploads import make_images
from tests.uploads.conftest import only_event
from tests.uploads.http import Part, file_part, multipart
from uploads.models import Upload

pytestmark = pytest.mark.django_db

HTML = b"<html><body><script>alert(1)</script></body></html>"


def post_form(client, *parts: Part, path: str = "/upload/"):
    body, content_type = multipart(*parts)
    return client.post(path, body, content_type=content_type)


def test_the_upload_page_needs_a_login(client):
    response = client.get("/upload/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_the_form_takes_its_limits_from_the_policy(signed_in):
    page = signed_in.get("/upload/").content.decode()
    assert 'accept=".png,.jpg,.jpeg,.gif,.webp,.pdf,.txt,.csv"' in page
    assert "Up to 10 MiB each" in page
    assert "PNG image" in page
    assert "multiple" not in page  # one file at a time


def test_an_accepted_upload_lands_in_my_uploads(signed_in, owner):
    response = post_form(signed_in, file_part("Grüße.txt", b"hello\n"))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/uploads/"
    page = signed_in.get("/uploads/").content.decode()
    assert "Uploaded Grüße.txt." in page
    upload = Upload.objects.get(owner=owner)
    assert f"/uploads/{upload.pk}/download/" in page
    download = signed_in.get(f"/uploads/{upload.pk}/download/")
    assert b"".join(download.streaming_content) == b"hello\n"
    assert download["Content-Disposition"].startswith("attachment;")


def test_a_refusal_shows_the_api_detail_next_to_the_field(signed_in, upload_dirs):
    response = post_form(signed_in, file_part("page.txt", HTML))
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    event = only_event()
    assert event.code == "type_not_allowed"
    page = response.content.decode()
    error = re.search(r'<p id="file-error" class="error" role="alert">(.*?)</p>', page, re.S)
    assert error
    assert "is not a type this upload accepts" in error.group(1) or "HTML" in error.group(1)
    assert 'aria-describedby="file-hint file-error"' in page
    upload_dirs.assert_nothing_kept()


def test_the_form_and_the_api_say_the_same(signed_in, upload_dirs):
    form = post_form(signed_in, file_part("pic.png", make_images.truncated_png()))
    body, content_type = multipart(file_part("pic.png", make_images.truncated_png()))
    api = signed_in.post("/api/v1/uploads/", body, content_type=content_type).json()
    assert api["code"] == "image_invalid"
    assert api["detail"] in form.content.decode()


def test_a_post_without_the_csrf_token_is_refused_and_kept_nowhere(owner, upload_dirs):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="owner", password=PASSWORD)
    response = post_form(browser, file_part("notes.txt", b"hello\n"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    upload_dirs.assert_nothing_kept()


def test_a_post_with_the_csrf_token_is_accepted(owner, upload_dirs):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="owner", password=PASSWORD)
    browser.get("/upload/")
    token = browser.cookies["csrftoken"].value
    response = post_form(
        browser, Part("csrfmiddlewaretoken", token.encode()), file_part("n.txt", b"hello\n")
    )
    assert response.status_code == HTTPStatus.FOUND
    assert Upload.objects.count() == 1


def test_an_unknown_upload_target_is_not_found(signed_in):
    response = signed_in.get("/upload/nope/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert "There is no upload target &quot;nope&quot;." in response.content.decode()


def test_deleting_asks_first(signed_in, owner, upload_dirs, django_capture_on_commit_callbacks):
    post_form(signed_in, file_part("notes.txt", b"hello\n"))
    upload = Upload.objects.get()
    confirm = signed_in.get(f"/uploads/{upload.pk}/delete/")
    assert "Delete notes.txt?" in confirm.content.decode()
    assert upload_dirs.stored_files()
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/uploads/{upload.pk}/delete/")
    assert response.status_code == HTTPStatus.FOUND
    assert upload_dirs.stored_files() == []
    assert "You have not uploaded anything yet." in signed_in.get("/uploads/").content.decode()


def test_another_users_files_are_not_found(signed_in, other_user, upload_dirs):
    post_form(signed_in, file_part("notes.txt", b"hello\n"))
    upload = Upload.objects.get()
    other = Client()
    other.force_login(other_user)
    for path in (f"/uploads/{upload.pk}/download/", f"/uploads/{upload.pk}/delete/"):
        assert other.get(path).status_code == HTTPStatus.NOT_FOUND
    assert other.post(f"/uploads/{upload.pk}/delete/").status_code == HTTPStatus.NOT_FOUND
