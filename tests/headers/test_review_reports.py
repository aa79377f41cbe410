"""Review of issue #3, D: the report endpoint stores only reports about this site's pages, and
cannot be made to store made-up directive names."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from policies.models import CspReport
from policies.reports import OTHER_DIRECTIVE, ReportRefused, parse_reports

pytestmark = pytest.mark.django_db

URL = "/csp-report/"
CSP_REPORT = "application/csp-report"
REPORTS_JSON = "application/reports+json"


@pytest.fixture(autouse=True)
def _clear_cache():
    """The throttle counters live in the shared cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)


def report_uri_body(
    document: str = "https://testserver/page?token=secret",
    directive: str = "script-src-elem",
    blocked: str = "https://cdn.example.net/lib.js",
) -> dict[str, Any]:
    return {
        "csp-report": {
            "document-uri": document,
            "effective-directive": directive,
            "violated-directive": directive,
            "blocked-uri": blocked,
        }
    }


def reporting_api_entry(
    document: str = "https://testserver/page", directive: str = "img-src"
) -> dict[str, Any]:
    body = {"documentURL": document, "effectiveDirective": directive, "blockedURL": "inline"}
    return {"type": "csp-violation", "url": document, "body": body}


def post(client: Client, payload: Any, content_type: str = CSP_REPORT, **extra: Any):
    return client.generic(
        "POST",
        URL,
        json.dumps(payload),
        content_type=content_type,
        CONTENT_TYPE=content_type,
        **extra,
    )


def stored() -> list[tuple[str, str, int]]:
    return list(
        CspReport.objects.order_by("document_path", "directive").values_list(
            "document_path", "directive", "count"
        )
    )


# --- The document must be a page of this site ---------------------------------------------------


def test_a_report_about_this_sites_page_is_stored(client):
    response = post(client, report_uri_body())
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert stored() == [("/page", "script-src-elem", 1)]


@pytest.mark.parametrize(
    "document",
    [
        "https://attacker.example/junk-1",
        "http://testserver.attacker.example/",
        "https://attacker.example@evil.example/",
        "blob:https://attacker.example/5f1c",
    ],
)
def test_a_report_about_another_sites_page_is_refused_and_nothing_stored(client, document):
    response = post(client, report_uri_body(document=document))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert "not a page of this site" in response.json()["detail"]
    assert CspReport.objects.count() == 0


def test_the_reporting_api_format_is_checked_too(client):
    batch = [reporting_api_entry(), reporting_api_entry(document="https://attacker.example/x")]
    response = post(client, batch, REPORTS_JSON)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert CspReport.objects.count() == 0  # the good entry of the batch is not kept either
    assert post(client, [reporting_api_entry()], REPORTS_JSON).status_code == 204
    assert stored() == [("/page", "img-src", 1)]


@pytest.mark.parametrize(
    "document",
    [
        "https://uploads.example.com/a",
        "https://UPLOADS.example.com:8443/a",
        "https://deep.uploads.example.com./a",
        "https://[2001:db8::1]/a",
        "blob:https://uploads.example.com/5f1c",
        "about:blank",  # a frame of one of the site's pages: kept by scheme only
        "data:text/html,<p>x</p>",
    ],
)
def test_hosts_are_matched_as_allowed_hosts_spells_them(client, settings, document):
    settings.ALLOWED_HOSTS = ["testserver", ".uploads.example.com", "[2001:db8::1]"]
    assert post(client, report_uri_body(document=document)).status_code == 204
    assert CspReport.objects.count() == 1


def test_in_debug_without_allowed_hosts_the_hosts_django_accepts_may_report(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    client = Client(enforce_csrf_checks=True)
    document = "http://localhost:8000/page"
    response = post(client, report_uri_body(document=document), HTTP_HOST="localhost:8000")
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert stored() == [("/page", "script-src-elem", 1)]
    response = post(client, report_uri_body(document="http://example.com/"), HTTP_HOST="localhost")
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_parse_reports_checks_the_hosts_it_is_given():
    body = json.dumps(report_uri_body(document="https://a.example/p")).encode()
    with pytest.raises(ReportRefused):
        parse_reports(body, CSP_REPORT, hosts=["b.example"])
    [violation] = parse_reports(body, CSP_REPORT, hosts=["a.example"])
    assert violation.document_path == "/p"


# --- Directive names ----------------------------------------------------------------------------


def test_made_up_directive_names_share_one_other_row(client):
    for n in range(30):
        response = post(client, report_uri_body(directive=f"made-up-directive-{n}"))
        assert response.status_code == HTTPStatus.NO_CONTENT
    assert stored() == [("/page", OTHER_DIRECTIVE, 30)]


@pytest.mark.parametrize(
    "directive",
    ["script-src-elem", "style-src-attr", "worker-src", "frame-ancestors", "trusted-types"],
)
def test_known_directive_names_are_kept(client, directive):
    assert post(client, report_uri_body(directive=directive)).status_code == 204
    assert stored() == [("/page", directive, 1)]


def test_a_whole_old_style_directive_keeps_its_known_name(client):
    assert post(client, report_uri_body(directive="Img-Src 'self' data:")).status_code == 204
    assert stored() == [("/page", "img-src", 1)]


def test_text_that_is_not_a_directive_name_is_still_refused(client):
    assert post(client, report_uri_body(directive="<script>")).status_code == 400
    assert CspReport.objects.count() == 0
