"""Review of issue #3, G: the preview (admin form and `manage.py headers_preview`) reads a path
as the middleware does (request.path_info): no query string, percent-encoding decoded."""

from __future__ import annotations

import io
from http import HTTPStatus

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from policies import services
from policies.forms import HeaderPreviewForm
from policies.headers import request_path, rule_sets

pytestmark = pytest.mark.django_db
WHY = {"reason": "test", "rollback_note": "delete the rule"}
RULE_LIST = reverse("admin:policies_headerrule_changelist")


@pytest.fixture(autouse=True)
def fresh_rules():
    rule_sets.clear()
    yield
    rule_sets.clear()


@pytest.fixture
def exact_rule(actor):
    return services.rule_create(
        data={
            "name": "exact-plain",
            "match_type": "exact",
            "path": "/t/plain/",
            "priority": 500,
            "custom_headers": {"X-Exact": "1"},
        },
        actor=actor,
        **WHY,
    )


def run_preview(*args: str) -> str:
    out = io.StringIO()
    call_command("headers_preview", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("raw", "path_info"),
    [
        ("/t/plain/", "/t/plain/"),
        ("/t/plain/?a=1", "/t/plain/"),
        ("/t/plain/#top", "/t/plain/"),
        ("/t/pl%61in/?a=%2F", "/t/plain/"),
        ("/caf%C3%A9/", "/caf\u00e9/"),
        ("/bad%FF/", "/bad%FF/"),  # not UTF-8: Django keeps it percent-encoded
        ("//evil.example/x?y", "//evil.example/x"),  # a path, not a host
        ("/a%3Fb/", "/a?b/"),
    ],
)
def test_request_path_is_what_path_info_would_be(raw, path_info, rf):
    assert request_path(raw) == path_info
    if not raw.startswith("//"):  # RequestFactory would read // as a host too
        assert rf.get(raw).path_info == path_info


# --- The admin form -----------------------------------------------------------------------------


def test_the_form_previews_a_path_with_a_query_string_as_sent(exact_rule):
    form = HeaderPreviewForm({"preview_path": "/t/plain/?a=1", "preview_https": "on"})
    assert form.is_valid(), form.errors
    assert form.preview_arguments()["path"] == "/t/plain/"


def test_the_form_decodes_percent_encoding(exact_rule):
    form = HeaderPreviewForm({"preview_path": "/t/pl%61in/"})
    assert form.is_valid(), form.errors
    assert form.preview_arguments()["path"] == "/t/plain/"


def test_the_form_still_refuses_a_relative_path():
    form = HeaderPreviewForm({"preview_path": "t/plain/?a=1"})
    assert not form.is_valid()
    assert "preview_path" in form.errors


def test_the_admin_preview_shows_the_exact_rule_for_a_url_with_a_query(client, editor, exact_rule):
    client.force_login(editor)
    response = client.get(RULE_LIST, {"preview_path": "/t/plain/?a=1", "preview_https": "on"})
    assert response.status_code == HTTPStatus.OK
    lines = {line.row.header: line.row for line in response.context["preview_lines"]}
    assert lines["X-Exact"].source == "exact-plain"


# --- manage.py headers_preview ------------------------------------------------------------------


def test_headers_preview_prints_each_header_and_the_rule_that_sets_it():
    output = run_preview("/")
    lines = output.splitlines()
    csp = next(line for line in lines if line.startswith("Content-Security-Policy: "))
    assert "default-src 'self'" in csp
    assert "[site-wide]" in csp
    assert "(plus the page's nonce in script-src/style-src when it uses one)" in csp
    hsts = next(line for line in lines if line.startswith("Strict-Transport-Security: "))
    assert hsts == "Strict-Transport-Security: max-age=31536000; includeSubDomains  [site-wide]"
    assert "X-Powered-By:   [site-wide]  (removed)" in lines


def test_headers_preview_http_and_authenticated_flags():
    plain = run_preview("/", "--http")
    assert "[site-wide]  (not sent: HTTPS only)" in plain
    anonymous = run_preview("/")
    assert "Cache-Control: no-store  [site-wide]  (not sent: signed-in users only)" in anonymous
    signed_in = run_preview("/", "--authenticated")
    assert "Cache-Control: no-store  [site-wide]\n" in signed_in


def test_headers_preview_reads_a_query_string_and_percent_encoding(exact_rule):
    for raw in ("/t/plain/", "/t/plain/?a=1", "/t/pl%61in/"):
        assert "X-Exact: 1  [exact-plain]" in run_preview(raw), raw
    assert "X-Exact" not in run_preview("/t/plain/x")


def test_headers_preview_the_same_as_the_response(client, exact_rule):
    response = client.get("/t/plain/?a=1", secure=True)
    assert response["X-Exact"] == "1"
    assert "X-Exact: 1  [exact-plain]" in run_preview("/t/plain/?a=1")


def test_headers_preview_refuses_a_relative_path():
    with pytest.raises(CommandError, match="starts with /"):
        run_preview("t/plain/")
