"""What a reviewer found untested: SVG under a text name, non-ASCII names for every default type,
the modes of stored files, the download CSP on both download routes, and the admin's filters."""

from __future__ import annotations

import html
import os
import re
import stat
from datetime import timedelta
from http import HTTPStatus
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from policies.headers import rule_sets
from policies.services import policy_create
from tests.headers.test_apply import parse_csp
from tests.uploads import make_images, make_pdfs
from tests.uploads.conftest import only_event
from tests.uploads.http import file_part, multipart
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db


def upload(client, name: str, content: bytes, policy: str = "default"):
    body, content_type = multipart(file_part(name, content, "text/plain"))
    return client.post(f"/api/v1/uploads/?policy={policy}", body, content_type=content_type)


def created(client, name: str, content: bytes, policy: str = "default") -> dict:
    response = upload(client, name, content, policy)
    assert response.status_code == HTTPStatus.CREATED, response.json()
    return response.json()


# --- a. SVG under a text name -----------------------------------------------------------------

SVGS = {
    "script": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "xml-declaration": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10"/></svg>\n'
    ),
    "onload-no-namespace": b'<svg width="10" height="10" onload="alert(1)"></svg>',
}


@pytest.mark.parametrize("svg", SVGS.values(), ids=SVGS.keys())
def test_svg_under_a_text_name_is_refused_and_nothing_kept(signed_in, upload_dirs, svg):
    response = upload(signed_in, "notes.txt", svg)
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert response.json()["code"] == "type_not_allowed"
    assert response.json()["detail"]
    upload_dirs.assert_nothing_kept()
    event = only_event()
    assert event.code == "type_not_allowed"
    assert event.content_type == "image/svg+xml"


# --- b. non-ASCII names for every type of the default policy ----------------------------------

NON_ASCII = [
    ("café.png", make_images.benign_png, "image/png"),
    ("Straße.jpg", make_images.benign_jpeg, "image/jpeg"),
    ("日本.gif", make_images.benign_gif, "image/gif"),
    ("ёлка.webp", make_images.benign_webp, "image/webp"),
    ("résumé.pdf", make_pdfs.benign_pdf, "application/pdf"),
    ("notes-ü.txt", lambda: "Grüße, ёлка, 日本\n".encode(), "text/plain"),
    ("données.csv", lambda: "nom,montant\nÉlodie,3\n".encode(), "text/csv"),
]


def test_the_non_ascii_cases_cover_every_type_of_the_default_policy(default_policy):
    assert sorted(sniffed for _, _, sniffed in NON_ASCII) == sorted(default_policy.allowed_types)


@pytest.mark.parametrize(("name", "make", "sniffed"), NON_ASCII, ids=[n[0] for n in NON_ASCII])
def test_non_ascii_names_are_accepted_unchanged(signed_in, upload_dirs, name, make, sniffed):
    body = created(signed_in, name, make())
    assert body["filename"] == name
    assert body["content_type"] == sniffed
    assert signed_in.get(f"/api/v1/uploads/{body['id']}/").json()["filename"] == name
    assert name in signed_in.get("/uploads/").content.decode()  # "my uploads" shows it as sent
    download = signed_in.get(f"/api/v1/uploads/{body['id']}/download/")
    encoded = re.search(r"filename\*=UTF-8''(\S+)", download["Content-Disposition"])
    assert encoded
    assert unquote(encoded.group(1)) == name  # the browser saves it under the same name
    assert len(upload_dirs.stored_files()) == 1
    assert upload_dirs.temp_files() == []
    assert only_event().code == "accepted"


# --- c. modes of stored files and their folders -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("notes.txt", lambda: b"hello\n"),  # moved from its temporary file
        ("photo.png", make_images.benign_png),  # written from the re-encoded bytes
    ],
)
def test_stored_files_are_0640_in_0750_folders(signed_in, upload_dirs, name, make):
    body = created(signed_in, name, make())
    stored = upload_dirs.store / Upload.objects.get(pk=body["id"]).stored_name
    assert upload_dirs.stored_files() == [stored]
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o640
    folders = stored.relative_to(upload_dirs.store).parents
    created_folders = [upload_dirs.store / folder for folder in folders if str(folder) != "."]
    assert created_folders  # stored names shard into a folder
    for folder in created_folders:
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o750, folder


# --- d. the download CSP on both routes -------------------------------------------------------

DOWNLOAD_CSP = {"default-src": ["'none'"], "sandbox": []}


@pytest.fixture
def seeded_rules_only():
    """Compiled rules another test changed must not linger in this process."""
    rule_sets.clear()
    yield
    rule_sets.clear()


@pytest.mark.parametrize("route", ["/uploads/{id}/download/", "/api/v1/uploads/{id}/download/"])
@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("notes.txt", lambda: b"hello\n"),
        ("report.pdf", make_pdfs.benign_pdf),
        ("photo.png", make_images.benign_png),
    ],
)
def test_downloads_carry_the_download_csp(signed_in, seeded_rules_only, route, name, make):
    body = created(signed_in, name, make())
    response = signed_in.get(route.format(id=body["id"]), secure=True)
    assert response.status_code == HTTPStatus.OK
    assert parse_csp(response["Content-Security-Policy"]) == DOWNLOAD_CSP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == body["content_type"]


# --- e. the admin's filters -------------------------------------------------------------------


@pytest.fixture
def viewer(editor):
    editor.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_upload", "view_uploadevent"])
    )
    return editor


def listed(page: str) -> set[str]:
    """The file names in the rows of an admin change list (events and uploads)."""
    rows = re.search(r'<table id="result_list">.*?<tbody>(.*?)</tbody>', page, re.S)
    if rows is None:  # no table at all: nothing matched the filters
        return set()
    names = re.findall(
        r'class="field-filename">(.*?)</td>|class="field-original_name"><a [^>]*>(.*?)</a>',
        rows.group(1),
    )
    return {html.unescape(event or upload) for event, upload in names}


def filtered(client, list_url: str, title: str, choice: str) -> set[str]:
    """Click `choice` under "By <title>" in the list's filter sidebar, as a user would."""
    page = client.get(list_url).content.decode()
    section = re.search(rf'<details data-filter-title="{title}".*?</details>', page, re.S)
    assert section, f"no filter by {title} on {list_url}"
    links = {
        html.unescape(label).strip(): html.unescape(href)
        for href, label in re.findall(r'<a href="(\?[^"]*)">(.*?)</a>', section.group(0))
    }
    assert choice in links, f"{choice!r} not among {sorted(links)}"
    response = client.get(list_url + links[choice])
    assert response.status_code == HTTPStatus.OK
    return listed(response.content.decode())


@pytest.fixture
def two_users_two_policies(signed_in, other_user, actor, upload_dirs):
    policy_create(
        data={"slug": "photos", "allowed_types": ["image/png"], "allowed_extensions": ["png"]},
        actor=actor,
        reason="test",
        rollback_note="delete it",
    )
    other = Client()
    other.force_login(other_user)
    png = make_images.benign_png()
    created(signed_in, "owner-notes.txt", b"owner\n")
    created(signed_in, "owner-photo.png", png, policy="photos")
    created(other, "other-notes.txt", b"other\n")
    created(other, "other-photo.png", png, policy="photos")
    assert upload(other, "other-page.txt", b"<html><script>x</script></html>").status_code == 415
    created(signed_in, "owner-old.txt", b"old\n")
    three_days_ago = timezone.now() - timedelta(days=3)
    UploadEvent.objects.filter(filename="owner-old.txt").update(created_at=three_days_ago)
    Upload.objects.filter(original_name="owner-old.txt").update(created_at=three_days_ago)


EVENTS = "/admin/uploads/uploadevent/"
UPLOADS = "/admin/uploads/upload/"


def test_the_event_list_filters_by_policy(client, viewer, two_users_two_policies):
    client.force_login(viewer)
    assert filtered(client, EVENTS, "policy slug", "photos") == {
        "owner-photo.png",
        "other-photo.png",
    }
    assert filtered(client, EVENTS, "policy slug", "default") == {
        "owner-notes.txt",
        "other-notes.txt",
        "other-page.txt",
        "owner-old.txt",
    }


def test_the_event_list_filters_by_user(client, viewer, two_users_two_policies):
    client.force_login(viewer)
    assert filtered(client, EVENTS, "user", "other") == {
        "other-notes.txt",
        "other-photo.png",
        "other-page.txt",
    }


def test_the_event_list_filters_by_date(client, viewer, two_users_two_policies):
    client.force_login(viewer)
    assert filtered(client, EVENTS, "created at", "Today") == {
        "owner-notes.txt",
        "owner-photo.png",
        "other-notes.txt",
        "other-photo.png",
        "other-page.txt",
    }
    assert "owner-old.txt" in filtered(client, EVENTS, "created at", "Past 7 days")


def test_the_upload_list_filters_by_owner_and_policy(client, viewer, two_users_two_policies):
    client.force_login(viewer)
    assert filtered(client, UPLOADS, "owner", "other") == {"other-notes.txt", "other-photo.png"}
    assert filtered(client, UPLOADS, "owner", "owner") == {
        "owner-notes.txt",
        "owner-photo.png",
        "owner-old.txt",
    }
    assert filtered(client, UPLOADS, "policy", "photos") == {"owner-photo.png", "other-photo.png"}
