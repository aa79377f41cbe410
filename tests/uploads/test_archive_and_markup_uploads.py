"""Archives, Office documents, SVG and XML through the whole pipeline, under policies that allow
them: the responses, the events, the rows and the storage afterwards (the checks themselves are
tested in test_archives.py and test_markup.py)."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.uploads import make_archives
from tests.uploads.conftest import only_event
from tests.uploads.ops import api_upload, form_upload, make_policy, token_client_for
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db

ZIP = "application/zip"
TAR = "application/x-tar"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SVG = "image/svg+xml"
XML = "text/xml"


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


@pytest.fixture
def bundles(actor):
    return make_policy(
        actor,
        "bundles",
        allowed_types=[ZIP, TAR, DOCX],
        allowed_extensions=["zip", "tar", "docx"],
        archive_max_entries=100,
        archive_max_expanded_bytes=10 * 1024 * 1024,
    )


@pytest.fixture
def drawings(actor):
    return make_policy(
        actor, "drawings", allowed_types=[SVG, XML], allowed_extensions=["svg", "xml"]
    )


def test_a_clean_zip_tar_and_word_document_are_stored(api, bundles, upload_dirs):
    for name, content in [
        ("bundle.zip", make_archives.normal_zip()),
        ("bundle.tar", make_archives.normal_tar()),
        ("letter.docx", make_archives.docx()),
    ]:
        response = api_upload(api, name, content, policy="bundles")
        assert response.status_code == HTTPStatus.CREATED, response.json()
    assert sorted(Upload.objects.values_list("content_type", flat=True)) == sorted([ZIP, TAR, DOCX])
    assert len(upload_dirs.stored_files()) == 3


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("bomb.zip", make_archives.zip_bomb, "bomb.txt"),
        ("slip.zip", lambda: make_archives.zip_with_name("../../evil.sh"), "outside"),
        ("link.zip", lambda: make_archives.zip_with_mode(0o120777), "link"),
        ("nested.zip", lambda: make_archives.nested_zip(1), "inside"),
        ("secret.zip", make_archives.encrypted_zip, "encrypted"),
        ("link.tar", make_archives.tar_with_symlink, "link"),
        ("many.zip", lambda: make_archives.zip_with_entries(101), "100"),
    ],
)
def test_dangerous_archives_are_refused_and_nothing_kept(
    api, bundles, upload_dirs, name, make, says
):
    response = api_upload(api, name, make(), policy="bundles")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    body = response.json()
    assert body["code"] == "archive_rejected"
    assert says in body["detail"]
    assert only_event().code == "archive_rejected"
    upload_dirs.assert_nothing_kept()


FORM_CASES = [
    ("bomb.zip", make_archives.zip_bomb, "bomb.txt"),
    ("slip.zip", lambda: make_archives.zip_with_name("../x"), "outside"),
    ("link.zip", lambda: make_archives.zip_with_mode(0o120777), "link"),
    ("nested.zip", lambda: make_archives.nested_zip(1), "inside"),
    ("secret.zip", make_archives.encrypted_zip, "encrypted"),
]


@pytest.mark.parametrize(("name", "make", "says"), FORM_CASES)
def test_the_form_shows_an_archive_refusal_next_to_the_field(
    signed_in, bundles, upload_dirs, name, make, says
):
    page = form_upload(signed_in, name, make(), "bundles")
    assert page.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    error = page.content.decode().split('id="file-error"')[1].split("</p>")[0]
    assert says in error
    assert only_event().code == "archive_rejected"
    upload_dirs.assert_nothing_kept()


def test_a_crafted_entry_offset_is_a_refusal_not_a_server_error(api, bundles, upload_dirs):
    response = api_upload(api, "crafted.zip", make_archives.crafted_offset_zip(), "bundles")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json()["code"] == "archive_rejected"
    assert only_event().code == "archive_rejected"
    upload_dirs.assert_nothing_kept()


def test_a_checker_that_fails_unexpectedly_refuses_the_file(
    api, drawings, monkeypatch, upload_dirs, caplog
):
    def broken(content, mime):
        raise RuntimeError("a bug in the checker")

    monkeypatch.setattr("uploads.markup.inspect_markup", broken)
    response = api_upload(api, "logo.svg", CLEAN_SVG, "drawings")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json() == {
        "code": "active_content",
        "detail": "An SVG drawing could not be checked by this server; "
        "this upload does not accept it.",
    }
    assert "failed unexpectedly" in caplog.text
    upload_dirs.assert_nothing_kept()


def test_archives_inside_archives_pass_when_the_policy_allows_the_depth(
    api, bundles, actor, upload_dirs
):
    from tests.uploads.ops import change_policy

    change_policy(actor, bundles, archive_max_depth=1)
    assert api_upload(api, "n.zip", make_archives.nested_zip(1), "bundles").status_code == 201
    deeper = api_upload(api, "nn.zip", make_archives.nested_zip(2), "bundles")
    assert deeper.json()["code"] == "archive_rejected"


def test_archives_are_refused_where_the_policy_does_not_allow_them(api, upload_dirs):
    response = api_upload(api, "bundle.zip", make_archives.normal_zip())
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    upload_dirs.assert_nothing_kept()


CLEAN_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="teal"/></svg>'
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)
XXE = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><d>&xxe;</d>'
SCRIPTED_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
)


def test_a_clean_svg_is_stored_and_downloads_as_an_attachment(api, drawings, upload_dirs):
    created = api_upload(api, "logo.svg", CLEAN_SVG, "drawings").json()
    download = api.get(f"/api/v1/uploads/{created['id']}/download/")
    assert download["Content-Disposition"].startswith("attachment;")
    assert b"".join(download.streaming_content) == CLEAN_SVG


@pytest.mark.parametrize(
    ("name", "content"),
    [("laughs.xml", BILLION_LAUGHS), ("xxe.xml", XXE), ("xxe.svg", XXE.replace(b"<d>", b"<svg>"))],
)
def test_entities_and_external_references_are_refused(
    api, signed_in, drawings, upload_dirs, name, content
):
    response = api_upload(api, name, content, "drawings")
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json()["code"] == "active_content"
    assert "DTD" in response.json()["detail"]
    assert "root:" not in response.content.decode()  # nothing of /etc/passwd came back
    page = form_upload(signed_in, name, content, "drawings")
    assert page.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "DTD" in page.content.decode().split('id="file-error"')[1]
    assert "root:" not in page.content.decode()
    codes = list(UploadEvent.objects.values_list("code", flat=True))
    assert codes == ["active_content", "active_content"]
    upload_dirs.assert_nothing_kept()


def test_a_scripted_svg_is_refused_through_the_form(signed_in, drawings, upload_dirs):
    page = form_upload(signed_in, "logo.svg", SCRIPTED_SVG, "drawings")
    assert page.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "script" in page.content.decode()
    assert only_event().code == "active_content"
    upload_dirs.assert_nothing_kept()
