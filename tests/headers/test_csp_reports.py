"""The CSP report endpoint, its aggregation, throttle and caps, the purge command and the admin."""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.client import FakePayload
from django.urls import reverse
from django.utils import timezone

from policies import reports
from policies.models import CspReport
from policies.report_views import MAX_BODY_BYTES, read_capped
from policies.reports import OVERFLOW_PATH, ReportRefused

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
    """Anonymous, and as strict about CSRF as a real browser request is."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture(autouse=True)
def _report_hosts(settings):
    """The sites these reports come from: only reports about our own hosts' pages are kept."""
    settings.ALLOWED_HOSTS = ["testserver", "example.com", "[2001:db8::1]"]


def report_uri_body(
    document: str = "https://example.com/page?token=secret#frag",
    directive: str = "script-src-elem",
    blocked: str = "https://cdn.example.net/lib.js?v=1",
) -> dict[str, Any]:
    return {
        "csp-report": {
            "document-uri": document,
            "referrer": "",
            "violated-directive": directive,
            "effective-directive": directive,
            "original-policy": "default-src 'self'; report-uri /csp-report/",
            "disposition": "enforce",
            "blocked-uri": blocked,
            "status-code": 200,
            "script-sample": "",
        }
    }


def reporting_api_entry(
    document: str = "https://example.com/page?token=secret",
    directive: str = "script-src-elem",
    blocked: str | None = "https://cdn.example.net/lib.js?v=1",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "documentURL": document,
        "effectiveDirective": directive,
        "originalPolicy": "default-src 'self'; report-to csp",
        "disposition": "enforce",
        "statusCode": 200,
    }
    if blocked is not None:
        body["blockedURL"] = blocked
    return {"type": "csp-violation", "age": 5, "url": document, "user_agent": "UA", "body": body}


def post(client: Client, payload: Any, content_type: str = CSP_REPORT, **extra: Any):
    data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    # CONTENT_TYPE too, since the test client leaves it out of a request with an empty body.
    return client.generic(
        "POST", URL, data, content_type=content_type, CONTENT_TYPE=content_type, **extra
    )


def rows() -> list[tuple[str, str, str, int]]:
    return list(
        CspReport.objects.order_by("document_path", "directive", "blocked_uri").values_list(
            "document_path", "directive", "blocked_uri", "count"
        )
    )


# --- Storing and aggregating --------------------------------------------------------------------


def test_url_is_the_one_the_seeded_rules_send():
    from policies.presets import CSP_REPORT_PATH

    assert reverse("csp-report") == URL == CSP_REPORT_PATH


def test_report_uri_format_is_stored_without_query_or_fragment(client):
    response = post(client, report_uri_body())

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert response.content == b""
    assert rows() == [("/page", "script-src-elem", "https://cdn.example.net", 1)]
    report = CspReport.objects.get()
    assert report.first_seen == report.last_seen
    assert not report.is_overflow


def test_reporting_api_format_is_stored_and_other_types_ignored(client):
    payload = [
        reporting_api_entry(),
        {"type": "deprecation", "url": "https://example.com/", "body": {"id": "x"}},
        reporting_api_entry(document="https://example.com/other", blocked="inline"),
    ]

    response = post(client, payload, REPORTS_JSON)

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert rows() == [
        ("/other", "script-src-elem", "inline", 1),
        ("/page", "script-src-elem", "https://cdn.example.net", 1),
    ]


def test_plain_json_takes_either_shape(client):
    assert post(client, report_uri_body(), "application/json").status_code == HTTPStatus.NO_CONTENT
    response = post(client, [reporting_api_entry()], "application/json")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert rows() == [("/page", "script-src-elem", "https://cdn.example.net", 2)]


def test_content_type_parameters_and_case_are_accepted(client):
    response = post(client, report_uri_body(), "Application/CSP-Report; charset=utf-8")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.count() == 1


def test_identical_reports_share_a_row_whose_last_seen_moves(client):
    assert post(client, report_uri_body()).status_code == HTTPStatus.NO_CONTENT
    first = CspReport.objects.get()
    earlier = timezone.now() - timedelta(hours=1)
    CspReport.objects.update(first_seen=earlier, last_seen=earlier)

    # The same violation, from the other format and with another query string.
    entry = reporting_api_entry(document="https://example.com/page?token=other")
    assert post(client, [entry], REPORTS_JSON).status_code == HTTPStatus.NO_CONTENT

    report = CspReport.objects.get()
    assert report.pk == first.pk
    assert report.count == 2
    assert report.first_seen == earlier
    assert report.last_seen > earlier


def test_repeats_within_one_batch_are_counted(client):
    response = post(client, [reporting_api_entry()] * 3, REPORTS_JSON)

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert rows() == [("/page", "script-src-elem", "https://cdn.example.net", 3)]


@pytest.mark.parametrize(
    ("blocked", "stored"),
    [
        ("inline", "inline"),
        ("eval", "eval"),
        ("data", "data"),
        ("", ""),
        ("data:image/png;base64,iVBORw0KGgo=", "data"),
        ("blob:https://example.com/5f1c", "blob"),
        ("https://user:pw@CDN.Example.net:443/x.js?k=v#f", "https://cdn.example.net"),
        ("https://cdn.example.net:8443/x.js", "https://cdn.example.net:8443"),
        ("https://example.com/static/app.js?v=3#x", "https://example.com/static/app.js"),
        ("wss://[2001:db8::1]:9000/socket", "wss://[2001:db8::1]:9000"),
    ],
)
def test_blocked_uri_is_reduced(client, blocked, stored):
    response = post(client, report_uri_body(document="https://example.com/p", blocked=blocked))

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().blocked_uri == stored


def test_missing_blocked_url_is_stored_empty(client):
    response = post(client, [reporting_api_entry(blocked=None)], REPORTS_JSON)

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().blocked_uri == ""


def test_old_style_violated_directive_keeps_the_name_only(client):
    body = report_uri_body()
    del body["csp-report"]["effective-directive"]
    body["csp-report"]["violated-directive"] = "Script-Src 'self'"

    assert post(client, body).status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().directive == "script-src"


def test_fields_are_truncated_to_the_model(client):
    long_path = "/" + "a" * 1000
    body = report_uri_body(document=f"https://example.com{long_path}", blocked="inline")

    assert post(client, body).status_code == HTTPStatus.NO_CONTENT
    report = CspReport.objects.get()
    assert report.document_path == long_path[:500]


def test_the_raw_report_is_never_logged(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="portcullis.csp_reports"):
        assert post(client, report_uri_body()).status_code == HTTPStatus.NO_CONTENT

    assert "/page" in caplog.text
    assert "secret" not in caplog.text
    assert "lib.js" not in caplog.text


# --- Refusals -----------------------------------------------------------------------------------


def test_body_over_64_kib_is_refused_unread(client):
    body = json.dumps(report_uri_body(blocked="inline" + " " * (65 * 1024)))
    assert len(body) > MAX_BODY_BYTES

    response = post(client, body)

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "request_too_large"
    assert not CspReport.objects.exists()


class CountingPayload(FakePayload):
    """The test client's request body, counting what the view reads of it."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_small_claimed_length_is_not_read_past(client):
    """A body longer than its Content-Length: only the claimed bytes are read, then refused."""
    body = json.dumps(report_uri_body(blocked="inline" + " " * (65 * 1024))).encode()
    stream = CountingPayload(body)

    response = client.generic(
        "POST",
        URL,
        CONTENT_TYPE=CSP_REPORT,
        CONTENT_LENGTH="100",
        **{"wsgi.input": stream},
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "parse_error"
    assert stream.bytes_read <= 100
    assert not CspReport.objects.exists()


def test_a_large_claimed_length_is_refused_before_reading(client):
    stream = CountingPayload(json.dumps(report_uri_body()).encode())

    response = client.generic(
        "POST",
        URL,
        CONTENT_TYPE=CSP_REPORT,
        CONTENT_LENGTH=str(10 * 1024 * 1024),
        **{"wsgi.input": stream},
    )

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "request_too_large"
    assert stream.bytes_read == 0
    assert not CspReport.objects.exists()


def test_read_capped_stops_one_byte_past_the_cap_whatever_the_stream_holds():
    stream = io.BytesIO(b"x" * (1024 * 1024))

    with pytest.raises(ReportRefused) as refused:
        read_capped(stream, limit=MAX_BODY_BYTES)

    assert refused.value.code == "request_too_large"
    assert stream.tell() == MAX_BODY_BYTES + 1
    assert read_capped(io.BytesIO(b"y" * MAX_BODY_BYTES)) == b"y" * MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"{not json", CSP_REPORT, "parse_error"),
        (b"", CSP_REPORT, "parse_error"),
        (b"\xff\xfe\xfd", CSP_REPORT, "parse_error"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", "parse_error"),
        (b'"a string"', CSP_REPORT, "bad_request"),
        (b"[]", CSP_REPORT, "bad_request"),  # a list is not the report-uri format
        (b'{"csp-report": {}}', REPORTS_JSON, "bad_request"),  # nor an object the Reporting API
        (b'{"csp-report": "x"}', CSP_REPORT, "bad_request"),
        (b'{"other": {}}', CSP_REPORT, "bad_request"),
        (b'{"csp-report": {"effective-directive": "img-src"}}', CSP_REPORT, "bad_request"),
        (
            b'{"csp-report": {"document-uri": "https://example.com/", "blocked-uri": "x"}}',
            CSP_REPORT,
            "bad_request",
        ),
        (
            b'{"csp-report": {"document-uri": "https://example.com/", '
            b'"effective-directive": "img src\'<", "blocked-uri": 5}}',
            CSP_REPORT,
            "bad_request",
        ),
        (
            b'{"csp-report": {"document-uri": "https://example.com/", '
            b'"effective-directive": "<script>"}}',
            CSP_REPORT,
            "bad_request",
        ),
        (
            b'{"csp-report": {"document-uri": "https://example.com/", '
            b'"effective-directive": "img-src", "blocked-uri": "https://x.test:99999/"}}',
            CSP_REPORT,
            "bad_request",
        ),
        (b"[1]", REPORTS_JSON, "bad_request"),
        (b'[{"type": "csp-violation"}]', REPORTS_JSON, "bad_request"),
        (
            b'[{"type": "csp-violation", "body": {"documentURL": "/x"}}]',
            REPORTS_JSON,
            "bad_request",
        ),
    ],
)
def test_malformed_bodies_are_refused_and_nothing_is_stored(client, body, content_type, code):
    response = post(client, body, content_type)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert not CspReport.objects.exists()


# Lone surrogates have no UTF-8 form (SQLite and PostgreSQL both fail on them); PostgreSQL cannot
# store NUL; no browser-sent URL or directive holds a control character.
BAD_TEXT = [
    pytest.param("\ud800", id="lone-high-surrogate"),
    pytest.param("\udc80", id="lone-low-surrogate"),
    pytest.param("\x00", id="nul"),
    pytest.param("\x01", id="c0"),
    pytest.param("\t", id="tab"),
    pytest.param("\n", id="newline"),
    pytest.param("\x1f", id="unit-separator"),
    pytest.param("\x7f", id="del"),
    pytest.param("\x85", id="c1-nel"),
    pytest.param("\x9f", id="c1-last"),
]


def assert_refused(response) -> None:
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert response.json()["detail"]
    assert not CspReport.objects.exists()


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("field", ["document", "blocked", "directive"])
def test_report_uri_text_that_cannot_be_stored_is_refused(client, field, bad):
    values = {
        "document": "https://example.com/page",
        "directive": "img-src",
        "blocked": "https://cdn.example.net/x.png",
    }
    values[field] += bad  # json.dumps writes it as a \uXXXX escape, as an attacker would

    assert_refused(post(client, report_uri_body(**values)))


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("field", ["documentURL", "blockedURL", "effectiveDirective", "url"])
def test_reporting_api_text_that_cannot_be_stored_is_refused(client, field, bad):
    entry = reporting_api_entry()
    if field == "url":  # the entry's URL stands in for a missing documentURL
        del entry["body"]["documentURL"]
        entry["url"] = "https://example.com/page" + bad
    else:
        entry["body"][field] = bad + entry["body"][field]

    assert_refused(post(client, [reporting_api_entry(), entry], REPORTS_JSON))


@pytest.mark.parametrize(
    "body",
    [
        # The reviewer's cases, byte for byte: escapes in the JSON text itself.
        b'{"csp-report": {"document-uri": "https://example.com/", '
        b'"effective-directive": "img-src", "blocked-uri": "\\ud800"}}',
        b'{"csp-report": {"document-uri": "https://example.com/\\u0000", '
        b'"effective-directive": "img-src", "blocked-uri": "inline"}}',
        b'{"csp-report": {"document-uri": "https://example.com/", '
        b'"effective-directive": "img-src", "blocked-uri": "https://x.test/\\u0000"}}',
        # A raw (UTF-8 encoded) C1 control, which JSON itself allows inside a string.
        b'{"csp-report": {"document-uri": "https://example.com/\xc2\x85", '
        b'"effective-directive": "img-src", "blocked-uri": "inline"}}',
    ],
)
def test_escaped_surrogates_and_nul_in_raw_json_are_refused(client, body):
    assert_refused(post(client, body))


def test_text_in_fields_that_are_not_stored_does_not_matter(client):
    """Script samples may hold newlines, and nothing but the three reduced fields is kept."""
    body = report_uri_body(document="https://example.com/p", blocked="inline")
    body["csp-report"]["script-sample"] = "alert(1)\n\x00\ud800"
    body["csp-report"]["referrer"] = "\x00"

    assert post(client, body).status_code == HTTPStatus.NO_CONTENT
    assert rows() == [("/p", "script-src-elem", "inline", 1)]


def test_non_ascii_text_and_escaped_surrogate_pairs_are_stored(client):
    """Only lone surrogates are refused: a pair escaped in JSON is one character, stored as such."""
    body = (
        b'{"csp-report": {"document-uri": "https://example.com/caf\xc3\xa9/\\ud83d\\ude00", '
        b'"effective-directive": "img-src", "blocked-uri": "https://b\\u00fccher.example/x"}}'
    )

    assert post(client, body).status_code == HTTPStatus.NO_CONTENT
    assert rows() == [("/caf\u00e9/\U0001f600", "img-src", "https://b\u00fccher.example", 1)]


@pytest.mark.parametrize(
    "document",
    [
        "not a url at all",
        "/relative/path",
        "//example.com/scheme-relative",
        "example.com/page",
        "localhost:8000/page",
        "https:",
        "https://",
        "https:///no-host",
        "https://user:pw@/no-host",
        "https:example.com/page",
        "https://example.com:99999/",
        "https://example.com:port/",
        "http://[::1/",
        "ftp://example.com/file",
        "ws://example.com/socket",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "chrome-extension://abcdef/page.html",
    ],
)
def test_a_document_that_is_not_an_absolute_web_url_is_refused(client, document):
    assert_refused(post(client, report_uri_body(document=document)))
    entry = reporting_api_entry(document=document)
    assert_refused(post(client, [entry], REPORTS_JSON))


@pytest.mark.parametrize(
    ("document", "stored"),
    [
        ("https://example.com", "/"),
        ("HTTP://Example.COM:8080/a/b?x=1", "/a/b"),
        ("https://[2001:db8::1]/v6", "/v6"),
        ("about:blank", "about:"),
        ("about:srcdoc", "about:"),
        ("blob:https://example.com/5f1c", "blob:"),
        ("data:text/html,<p>secret</p>", "data:"),
    ],
)
def test_web_and_known_non_web_documents_are_accepted(client, document, stored):
    response = post(client, report_uri_body(document=document, blocked="inline"))

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().document_path == stored


def test_one_bad_entry_refuses_the_whole_batch(client):
    payload = [reporting_api_entry(), {"type": "csp-violation", "body": "nope"}]

    response = post(client, payload, REPORTS_JSON)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not CspReport.objects.exists()


def test_too_many_distinct_violations_in_one_request_are_refused(client):
    payload = [
        reporting_api_entry(document=f"https://example.com/p{n}")
        for n in range(reports.MAX_KEYS_PER_REQUEST + 1)
    ]

    response = post(client, payload, REPORTS_JSON)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"
    assert not CspReport.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_other_content_types_are_refused(client, content_type):
    response = post(client, report_uri_body(), content_type)

    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert response.json()["code"] == "unsupported_media_type"
    assert not CspReport.objects.exists()


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_only_post_is_allowed(client, method):
    response = client.generic(method, URL)

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "POST"
    if method != "HEAD":
        assert response.json()["code"] == "method_not_allowed"


def test_no_csrf_token_or_login_is_needed(client):
    response = post(client, report_uri_body())

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.count() == 1


# --- Throttle -----------------------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every request in the same minute, whenever the test runs."""
    monkeypatch.setattr(reports, "_epoch_seconds", lambda: 1_800_000_000.0 + 15)


def test_61st_request_a_minute_is_throttled_per_address(client, frozen_clock, settings):
    settings.CSP_REPORTS_PER_MINUTE = 60
    for _ in range(60):
        response = post(client, report_uri_body(), REMOTE_ADDR="203.0.113.7")
        assert response.status_code == HTTPStatus.NO_CONTENT

    response = post(client, report_uri_body(), REMOTE_ADDR="203.0.113.7")

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == "45"
    assert response.json()["retry_after"] == 45
    assert CspReport.objects.get().count == 60

    other = post(client, report_uri_body(), REMOTE_ADDR="203.0.113.8")
    assert other.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().count == 61


def test_the_throttle_counts_refused_requests_and_resets_next_minute(client, monkeypatch, settings):
    settings.CSP_REPORTS_PER_MINUTE = 2
    monkeypatch.setattr(reports, "_epoch_seconds", lambda: 1_800_000_000.0)
    assert post(client, b"{bad", REMOTE_ADDR="198.51.100.1").status_code == HTTPStatus.BAD_REQUEST
    assert (
        post(client, report_uri_body(), REMOTE_ADDR="198.51.100.1").status_code
        == HTTPStatus.NO_CONTENT
    )
    throttled = post(client, report_uri_body(), REMOTE_ADDR="198.51.100.1")
    assert throttled.status_code == HTTPStatus.TOO_MANY_REQUESTS

    monkeypatch.setattr(reports, "_epoch_seconds", lambda: 1_800_000_060.0)
    response = post(client, report_uri_body(), REMOTE_ADDR="198.51.100.1")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert CspReport.objects.get().count == 2


def test_the_database_cache_keeps_throttle_counters_past_300_entries(frozen_clock, settings):
    """Django's DatabaseCache culls at MAX_ENTRIES (300 by default), which reset the counters."""
    if not isinstance(caches["default"], DatabaseCache):
        pytest.skip("the shared cache is Redis here, which does not cull by count")
    assert caches["default"]._max_entries >= 100_000
    assert reports.throttle_wait("192.0.2.1", limit=1) is None
    cache.set_many({f"unrelated:{n}": n for n in range(400)})

    assert reports.throttle_wait("192.0.2.1", limit=1) == 45


# --- Row cap ------------------------------------------------------------------------------------


def test_past_the_row_cap_new_combinations_go_to_the_overflow_row(client, settings):
    settings.CSP_REPORTS_MAX_ROWS = 2
    for name in ("a", "b"):
        body = report_uri_body(document=f"https://example.com/{name}")
        assert post(client, body).status_code == HTTPStatus.NO_CONTENT

    for name in ("c", "d", "c"):
        body = report_uri_body(document=f"https://example.com/{name}")
        assert post(client, body).status_code == HTTPStatus.NO_CONTENT
    assert post(client, report_uri_body(document="https://example.com/a")).status_code == (
        HTTPStatus.NO_CONTENT
    )

    overflow = CspReport.objects.get(is_overflow=True)
    assert (overflow.document_path, overflow.directive, overflow.blocked_uri) == (
        OVERFLOW_PATH,
        "",
        "",
    )
    assert overflow.count == 3
    assert rows() == [
        (OVERFLOW_PATH, "", "", 3),
        ("/a", "script-src-elem", "https://cdn.example.net", 2),
        ("/b", "script-src-elem", "https://cdn.example.net", 1),
    ]


def test_get_or_create_race_is_counted_on_the_winning_row(monkeypatch):
    """Another request inserts the same key between our update and our insert: no count is lost."""
    violation = reports.Violation("/page", "img-src", "inline")
    original_get_or_create = CspReport.objects.get_or_create
    now = timezone.now()

    def racing_get_or_create(**kwargs):
        CspReport.objects.create(
            document_path="/page",
            directive="img-src",
            blocked_uri="inline",
            count=1,
            first_seen=now,
            last_seen=now,
        )
        return original_get_or_create(**kwargs)

    monkeypatch.setattr(CspReport.objects, "get_or_create", racing_get_or_create)

    reports.csp_reports_record(violations=[violation])

    assert rows() == [("/page", "img-src", "inline", 2)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_a_new_key_lose_no_count():
    """Threads race to create and count the same row; every report is counted once."""
    violation = reports.Violation("/page", "img-src", "inline")

    def record(_n: int) -> None:
        try:
            reports.csp_reports_record(violations=[violation])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(record, range(40)))

    assert rows() == [("/page", "img-src", "inline", 40)]


# --- Purge --------------------------------------------------------------------------------------


def test_purge_removes_only_rows_last_seen_before_the_cutoff(client):
    for name in ("old", "new"):
        post(client, report_uri_body(document=f"https://example.com/{name}"))
    CspReport.objects.filter(document_path="/old").update(
        last_seen=timezone.now() - timedelta(days=31)
    )
    out = io.StringIO()

    call_command("csp_reports_purge", "--older-than", "30", stdout=out)

    assert "1 CSP report row(s) deleted." in out.getvalue()
    assert list(CspReport.objects.values_list("document_path", flat=True)) == ["/new"]


def test_purge_with_a_huge_age_deletes_nothing(client):
    post(client, report_uri_body())

    call_command("csp_reports_purge", older_than="999999999", stdout=io.StringIO())

    assert CspReport.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", ""])
def test_purge_refuses_a_bad_age(days):
    with pytest.raises(CommandError, match="DAYS"):
        call_command("csp_reports_purge", "--older-than", days)


def test_purge_requires_the_age():
    with pytest.raises(CommandError):
        call_command("csp_reports_purge")


# --- Admin --------------------------------------------------------------------------------------

ADMIN_LIST = reverse("admin:policies_cspreport_changelist")


@pytest.fixture
def staff_client(editor) -> Client:
    """The editor in the admin, where Django's own forms carry the CSRF token."""
    staff = Client()
    staff.force_login(editor)
    return staff


def test_admin_list_renders_for_an_editor(client, staff_client, settings):
    settings.CSP_REPORTS_MAX_ROWS = 1
    post(client, report_uri_body(document="https://example.com/one", blocked="inline"))
    post(client, report_uri_body(document="https://example.com/two"))

    response = staff_client.get(ADMIN_LIST)

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "/one" in page
    assert OVERFLOW_PATH in page
    assert response.context["cl"].result_count == 2
    filtered = staff_client.get(ADMIN_LIST, {"is_overflow__exact": "1", "q": "overflow"})
    assert filtered.context["cl"].result_count == 1


def test_admin_is_read_only_but_allows_delete(client, staff_client):
    post(client, report_uri_body())
    report = CspReport.objects.get()

    add = staff_client.get(reverse("admin:policies_cspreport_add"))
    assert add.status_code == HTTPStatus.FORBIDDEN
    change = staff_client.get(reverse("admin:policies_cspreport_change", args=[report.pk]))
    assert change.status_code == HTTPStatus.OK
    assert not change.context["has_change_permission"]

    delete_url = reverse("admin:policies_cspreport_delete", args=[report.pk])
    response = staff_client.post(delete_url, {"post": "yes"})

    assert response.status_code == HTTPStatus.FOUND
    assert not CspReport.objects.exists()


def test_admin_needs_the_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(ADMIN_LIST).status_code == HTTPStatus.FORBIDDEN
