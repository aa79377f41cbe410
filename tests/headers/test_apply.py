"""The header rules reach real responses, over HTTPS as Django sees it, and layer as designed."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.test import Client

from policies import presets, services
from policies.headers import preview, rule_sets
from policies.models import HeaderRule
from tests.headers.urls import DOWNLOAD_PATH
from tests.headers.views import DOWNLOAD_BODY

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.headers.urls")]
WHY = {"reason": "test", "rollback_note": "delete the rule"}
PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.fixture(autouse=True)
def fresh_rules():
    """Tests change rules inside a transaction that never commits, so no stamp bump: clear."""
    rule_sets.clear()
    yield
    rule_sets.clear()


def parse_csp(value: str) -> dict[str, list[str]]:
    """A serialized policy as CSP Level 3 parses it: directive order does not matter, and of a
    repeated directive only the first counts."""
    directives: dict[str, list[str]] = {}
    for token in value.split(";"):
        parts = token.strip().split()
        if parts:
            directives.setdefault(parts[0].lower(), parts[1:])
    return directives


def add_rule(actor, **data):
    rule = services.rule_create(data={"match_type": "prefix", **data}, actor=actor, **WHY)
    rule_sets.clear()
    return rule


def seeded(name: str) -> dict:
    return {rule["name"]: rule for rule in presets.seeded_rules()}[name]


# What the seeded site-wide rule sends besides its CSP, every value exact. The CSP and the
# Permissions-Policy come from the preset itself; the others are what the issue asks for.
SITE_HEADERS = {
    "Strict-Transport-Security": f"max-age={presets.STRICT['hsts_max_age']}; includeSubDomains",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Permitted-Cross-Domain-Policies": "none",
    "Reporting-Endpoints": 'csp="/csp-report/"',
}
# Every powerful feature denied, and nothing else (a structured-field dictionary: its members'
# order means nothing, and PostgreSQL's jsonb does not keep the preset's order).
SITE_PERMISSIONS_POLICY = dict.fromkeys(presets.DENIED_FEATURES, "()")


def parse_permissions_policy(value: str) -> dict[str, str]:
    members = [tuple(member.strip().split("=", 1)) for member in value.split(",")]
    parsed = dict(members)
    assert len(parsed) == len(members), f"a feature listed twice: {value}"
    return parsed


def assert_seeded_site_headers(response, *, csp: dict[str, list[str]] = presets.STRICT_CSP):
    assert parse_csp(response["Content-Security-Policy"]) == csp
    assert {name: response.get(name) for name in SITE_HEADERS} == SITE_HEADERS
    assert parse_permissions_policy(response["Permissions-Policy"]) == SITE_PERMISSIONS_POLICY
    assert "Content-Security-Policy-Report-Only" not in response
    assert "Permissions-Policy-Report-Only" not in response


def test_the_seeded_presets_are_at_the_observatory_bar():
    """What the matrix below compares against is itself strict enough (an A+ on HTML pages)."""
    assert presets.STRICT["hsts_max_age"] >= 31_536_000
    csp = presets.STRICT_CSP
    assert csp["default-src"] in (["'none'"], ["'self'"])
    assert not {"'unsafe-inline'", "'unsafe-eval'"} & set(csp["script-src"])
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert "base-uri" in csp
    assert seeded("downloads")["csp"] == {"default-src": ["'none'"], "sandbox": []}


def _download_checks(response):
    assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert b"".join(response.streaming_content) == DOWNLOAD_BODY


# Five kinds of response: (path, status, a check of the response itself, the CSP it gets).
RESPONSE_KINDS = {
    "html-page": (
        "/accounts/login/",
        HTTPStatus.OK,
        lambda r: r["Content-Type"].startswith("text/html") and b"<form" in r.content,
        presets.STRICT_CSP,
    ),
    "json": ("/t/json/", HTTPStatus.OK, lambda r: r.json() == {"ok": True}, presets.STRICT_CSP),
    "redirect": (
        "/t/redirect/",
        HTTPStatus.FOUND,
        lambda r: r["Location"] == "/t/plain/",
        presets.STRICT_CSP,
    ),
    "404": ("/no/such/page/", HTTPStatus.NOT_FOUND, lambda r: True, presets.STRICT_CSP),
    "download": (
        DOWNLOAD_PATH,
        HTTPStatus.OK,
        lambda r: _download_checks(r) is None,
        seeded("downloads")["csp"],
    ),
}


def https_get(client: Client, settings, how: str, path: str):
    """GET `path` over HTTPS as Django sees it: a secure request, or a proxy's forwarded one."""
    if how == "secure":
        response = client.get(path, secure=True)
    else:
        settings.SECURE_PROXY_SSL_HEADER = PROXY_SSL_HEADER
        response = client.get(path, HTTP_X_FORWARDED_PROTO="https")  # a plain-HTTP request
        assert response.wsgi_request.META["wsgi.url_scheme"] == "http"
    assert response.wsgi_request.is_secure()
    return response


@pytest.mark.parametrize("how", ["secure", "behind-proxy"])
@pytest.mark.parametrize("kind", list(RESPONSE_KINDS))
def test_every_kind_of_response_gets_exactly_the_seeded_headers(client, settings, kind, how):
    path, status, looks_right, csp = RESPONSE_KINDS[kind]
    response = https_get(client, settings, how, path)
    assert response.status_code == status
    assert looks_right(response)
    assert_seeded_site_headers(response, csp=csp)


def test_a_download_gets_a_sandboxed_script_free_policy(client):
    assert re.search(seeded("downloads")["path"], DOWNLOAD_PATH)  # the rule is for this URL
    response = client.get(DOWNLOAD_PATH, secure=True)
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="report.pdf"' in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == DOWNLOAD_BODY
    assert parse_csp(response["Content-Security-Policy"]) == {
        "default-src": ["'none'"],
        "sandbox": [],
    }
    assert_seeded_site_headers(response, csp={"default-src": ["'none'"], "sandbox": []})


def test_an_html_page_gets_the_seeded_headers(client):
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == HTTPStatus.OK
    assert_seeded_site_headers(response)
    csp = response["Content-Security-Policy"]
    for directive in (
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "report-uri /csp-report/",
    ):
        assert directive in csp
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src


def test_behind_the_proxy_plain_http_gets_no_hsts(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = PROXY_SSL_HEADER
    response = client.get("/t/plain/", HTTP_X_FORWARDED_PROTO="http")
    assert not response.wsgi_request.is_secure()
    assert "Strict-Transport-Security" not in response
    assert response["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in client.get("/t/plain/")  # the header is needed


def test_without_the_proxy_setting_a_forwarded_https_gets_no_hsts(client):
    response = client.get("/t/plain/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in response
    assert response["Permissions-Policy"]  # the rules did apply, over plain HTTP


def test_hsts_is_not_sent_over_plain_http(client):
    response = client.get("/t/plain/")
    assert "Strict-Transport-Security" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_x_powered_by_is_removed():
    assert "X-Powered-By" not in Client().get("/t/powered/", secure=True)


@pytest.mark.parametrize("secure", [True, False])
def test_a_personalised_page_is_no_store_for_a_signed_in_user(client, owner, secure):
    """Cache-Control is for pages that looked at who is signed in (this one shows the name)."""
    response = client.get("/t/whoami/", secure=secure)
    assert b"Signed in as anonymous" in response.content
    assert "Cache-Control" not in response  # anonymous: the page is the same for everyone
    client.force_login(owner)
    response = client.get("/t/whoami/", secure=secure)
    assert b"Signed in as owner" in response.content
    assert response["Cache-Control"] == "no-store"
    client.logout()
    assert "Cache-Control" not in client.get("/t/whoami/", secure=secure)


def test_the_seeded_cache_control_is_the_presets(client, owner):
    client.force_login(owner)
    response = client.get("/t/whoami/", secure=True)
    assert response["Cache-Control"] == presets.STRICT["cache_control"] == "no-store"


def test_higher_priority_wins_then_exact_then_longer_prefix_then_regex(client, actor):
    add_rule(
        actor,
        name="regex",
        match_type="regex",
        path="^/t/",
        priority=500,
        custom_headers={"X-Which": "regex"},
    )
    assert client.get("/t/plain/")["X-Which"] == "regex"
    add_rule(actor, name="short", path="/t/", priority=500, custom_headers={"X-Which": "short"})
    assert client.get("/t/plain/")["X-Which"] == "short"
    add_rule(actor, name="long", path="/t/pl", priority=500, custom_headers={"X-Which": "long"})
    assert client.get("/t/plain/")["X-Which"] == "long"
    add_rule(
        actor,
        name="exact",
        match_type="exact",
        path="/t/plain/",
        priority=500,
        custom_headers={"X-Which": "exact"},
    )
    assert client.get("/t/plain/")["X-Which"] == "exact"
    add_rule(
        actor,
        name="top",
        match_type="regex",
        path="plain",
        priority=900,
        custom_headers={"X-Which": "top"},
    )
    assert client.get("/t/plain/")["X-Which"] == "top"
    assert client.get("/t/json/")["X-Which"] == "short"


def test_each_header_comes_from_the_first_rule_that_sets_it(client, actor):
    add_rule(actor, name="frames", path="/t/", priority=500, x_frame_options="SAMEORIGIN")
    response = client.get("/t/plain/", secure=True)
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # from "frames"
    assert response["Referrer-Policy"] == "same-origin"  # still from "site-wide"
    rows = {row.header: row.source for row in preview("/t/plain/")}
    assert rows["X-Frame-Options"] == "frames"
    assert rows["Referrer-Policy"] == "site-wide"


def test_a_rule_for_one_host_applies_to_that_host_only(client, actor, settings):
    settings.ALLOWED_HOSTS = ["testserver", "uploads.example.com"]
    add_rule(
        actor,
        name="host",
        path="/",
        host="uploads.example.com",
        priority=500,
        custom_headers={"X-Host-Rule": "1"},
    )
    assert client.get("/t/plain/", HTTP_HOST="uploads.example.com:443")["X-Host-Rule"] == "1"
    assert "X-Host-Rule" not in client.get("/t/plain/")


def test_disabled_rules_do_nothing(client, actor):
    add_rule(
        actor, name="off", path="/t/", priority=500, enabled=False, custom_headers={"X-Off": "1"}
    )
    assert "X-Off" not in client.get("/t/plain/")


def test_report_only_csp_goes_out_as_its_report_only_header(client, actor):
    add_rule(
        actor,
        name="rehearse",
        path="/t/",
        priority=500,
        mode="report_only",
        csp={"default-src": ["'none'"], "report-uri": ["/csp-report/"]},
    )
    response = client.get("/t/plain/", secure=True)
    assert parse_csp(response["Content-Security-Policy-Report-Only"]) == {
        "default-src": ["'none'"],
        "report-uri": ["/csp-report/"],
    }
    assert "default-src 'self'" in response["Content-Security-Policy"]  # still enforced


def test_report_only_permissions_policy_has_its_report_only_header(client, actor):
    add_rule(
        actor,
        name="pp",
        path="/t/",
        priority=500,
        mode="report_only",
        permissions_policy={"fullscreen": ["self"]},
    )
    response = client.get("/t/plain/")
    assert response["Permissions-Policy-Report-Only"] == "fullscreen=(self)"
    assert "camera=()" in response["Permissions-Policy"]


def test_other_report_only_headers_are_previewed_and_logged_not_sent(client, actor, caplog):
    add_rule(
        actor,
        name="quiet",
        path="/t/",
        priority=500,
        mode="report_only",
        x_frame_options="SAMEORIGIN",
        custom_headers={"X-Rehearsed": "1"},
    )
    with caplog.at_level(logging.INFO, logger="portcullis.headers"):
        response = client.get("/t/plain/")
    assert "X-Rehearsed" not in response
    assert response["X-Frame-Options"] == "DENY"
    # The path may be quoted (repr) so that a decoded line break in it cannot forge a log line.
    assert re.search(
        r"rule quiet would set X-Rehearsed: 1 \(first seen on '?/t/plain/'?\)", caplog.text
    )
    with caplog.at_level(logging.INFO, logger="portcullis.headers"):
        client.get("/t/plain/?again")
        client.get("/t/json/")
    assert caplog.text.count("would set X-Rehearsed") == 1  # once per rule set, not per path
    rows = [r for r in preview("/t/plain/") if r.source == "quiet"]
    assert {r.header for r in rows} == {"X-Frame-Options", "X-Rehearsed"}
    assert all("not sent" in r.note for r in rows)


def test_the_nonce_in_the_header_is_the_one_in_the_page_and_new_each_time(client):
    nonces = []
    for _ in range(2):
        response = client.get("/t/nonce/", secure=True)
        page_nonce = re.search(r'nonce="([^"]+)"', response.content.decode()).group(1)
        script_src = re.search(r"script-src ([^;]*)", response["Content-Security-Policy"])
        assert f"'nonce-{page_nonce}'" in script_src.group(1).split()
        nonces.append(page_nonce)
    assert nonces[0] != nonces[1]


def test_a_page_that_reads_no_nonce_gets_none(client):
    assert "nonce-" not in client.get("/t/plain/", secure=True)["Content-Security-Policy"]


def test_per_view_decorators_keep_working(client):
    updated = parse_csp(client.get("/t/updated/", secure=True)["Content-Security-Policy"])
    assert updated["img-src"] == ["'self'", "data:", "https://images.example.com"]
    assert "Content-Security-Policy" not in client.get("/t/exempt/", secure=True)


class FrozenClock:
    """policies.headers' monotonic clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock()
    monkeypatch.setattr("policies.headers.time", frozen)
    return frozen


def test_no_query_is_added_for_an_anonymous_request_after_warm_up(
    client, clock, django_assert_num_queries
):
    """However slow the machine: the clock only moves when the test moves it."""
    client.get("/t/plain/", secure=True)  # warm-up: loads and compiles the rules
    clock.now += 0.9  # within the second: the stamp is not even read
    with django_assert_num_queries(0):
        for path in ("/t/plain/", "/t/json/", "/no/such/page/", "/t/whoami/"):
            response = client.get(path, secure=True)
            assert parse_csp(response["Content-Security-Policy"]) == presets.STRICT_CSP


def test_after_a_second_the_stamp_is_read_and_the_rules_are_not_reloaded(
    client, clock, django_assert_num_queries
):
    """The query the test above must not see is real: once a second, the stamp check (the shared
    cache is the database cache here; with Redis it is no query at all), and no rule reload."""
    from django.conf import settings

    client.get("/t/plain/", secure=True)
    first = rule_sets.get()
    clock.now += 1.5
    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        with django_assert_num_queries(0):
            client.get("/t/plain/", secure=True)
    else:
        with django_assert_num_queries(1) as captured:
            client.get("/t/plain/", secure=True)
        assert "portcullis_cache" in captured.captured_queries[0]["sql"]
    assert rule_sets.get() is first  # same stamp: no reload


def test_headers_reset_restores_the_seeded_rules_and_disables_others(client, actor):
    site = HeaderRule.objects.get(name="site-wide")
    services.rule_update(
        rule=site, changes={"csp": {"default-src": ["*"]}}, version=site.version, actor=actor, **WHY
    )
    add_rule(actor, name="lockout", path="/admin/", priority=1000, csp={"default-src": ["'none'"]})
    call_command("headers_reset", reason="A bad CSP broke the admin", verbosity=0)
    rule_sets.clear()
    assert HeaderRule.objects.get(name="site-wide").csp["default-src"] == ["'self'"]
    assert not HeaderRule.objects.get(name="lockout").enabled
    response = client.get("/admin/login/", secure=True)
    assert "default-src 'self'" in response["Content-Security-Policy"]
    from policies.models import AuditEntry

    last = AuditEntry.objects.order_by("-seq")[:2]
    assert {e.reason for e in last} == {"A bad CSP broke the admin"}


def test_the_admin_inline_style_is_allowed_by_its_hash(client, editor):
    import base64
    import hashlib

    client.force_login(editor)
    response = client.get("/admin/policies/auditentry/", secure=True)  # a list with no actions
    style = re.search(r"<style>(.*?)</style>", response.content.decode(), re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in response["Content-Security-Policy"]


def test_a_header_in_another_letter_case_is_still_the_same_header(client, actor):
    add_rule(actor, name="hi", path="/t/", priority=900, custom_headers={"X-Foo": "high"})
    add_rule(actor, name="lo", path="/t/", priority=500, custom_headers={"x-foo": "low"})
    assert client.get("/t/plain/")["X-Foo"] == "high"
    rows = [row for row in preview("/t/plain/") if row.header.lower() == "x-foo"]
    assert [(row.value, row.source) for row in rows] == [("high", "hi")]


def test_the_first_rule_decides_between_setting_and_removing(client, actor):
    add_rule(actor, name="drop", path="/t/", priority=900, remove_headers=["X-Thing"])
    add_rule(actor, name="keep", path="/t/", priority=500, custom_headers={"X-Thing": "1"})
    assert "X-Thing" not in client.get("/t/plain/")
    add_rule(actor, name="set-first", path="/t/pl", priority=900, custom_headers={"X-Thing": "2"})
    assert client.get("/t/plain/")["X-Thing"] == "2"


def test_a_report_only_rule_does_not_hide_the_settings_floor(client, actor):
    add_rule(
        actor,
        name="ro-frames",
        path="/t/",
        priority=500,
        mode="report_only",
        x_frame_options="SAMEORIGIN",
    )
    site = HeaderRule.objects.get(name="site-wide")  # it sets DENY itself: take it away
    services.rule_disable(rule=site, actor=actor, **WHY)
    rule_sets.clear()
    response = client.get("/t/plain/", secure=True)
    rows = {(row.header, row.source) for row in preview("/t/plain/")}
    assert response["X-Frame-Options"] == "DENY"  # Django's XFrameOptionsMiddleware
    assert ("X-Frame-Options", "settings") in rows
    assert ("X-Frame-Options", "ro-frames") in rows


def test_report_only_rules_declare_their_reporting_endpoints(client, actor):
    add_rule(
        actor,
        name="ro-csp",
        path="/t/",
        priority=500,
        mode="report_only",
        csp={"default-src": ["'self'"], "report-to": ["rehearsal"]},
        reporting_endpoints={"rehearsal": "/csp-report/"},
    )
    endpoints = client.get("/t/plain/")["Reporting-Endpoints"]
    assert 'rehearsal="/csp-report/"' in endpoints
    assert 'csp="/csp-report/"' in endpoints


def test_a_rule_for_this_host_wins_a_tie_with_a_rule_for_all_hosts(client, actor, settings):
    settings.ALLOWED_HOSTS = ["testserver", "a.example"]
    add_rule(actor, name="all", path="/t/", priority=500, custom_headers={"X-H": "all"})
    add_rule(
        actor,
        name="zhost",
        path="/t/",
        host="a.example",
        priority=500,
        custom_headers={"X-H": "host"},
    )
    assert client.get("/t/plain/", HTTP_HOST="a.example")["X-H"] == "host"
    assert client.get("/t/plain/")["X-H"] == "all"


def test_a_page_with_a_nonce_works_under_a_default_src_only_policy(client, actor):
    add_rule(actor, name="plain-csp", path="/t/", priority=500, csp={"default-src": ["'self'"]})
    response = client.get("/t/nonce/", secure=True)
    nonce = re.search(r'nonce="([^"]+)"', response.content.decode()).group(1)
    policy = parse_csp(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert policy["default-src"] == ["'self'"]


def test_csp_replace_keeps_working(client):
    policy = parse_csp(client.get("/t/replaced/", secure=True)["Content-Security-Policy"])
    assert policy["img-src"] == ["https://only.example"]
    assert policy["default-src"] == ["'self'"]


def test_debug_error_pages_keep_django_csp_behaviour(client, settings):
    settings.DEBUG = True
    assert "Content-Security-Policy" not in client.get("/no/such/page/", secure=True)


def test_requests_keep_working_when_the_shared_cache_is_down(client, monkeypatch):
    class BrokenCache:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        add = set = get

    client.get("/t/plain/")  # rules loaded while the cache worked
    monkeypatch.setattr("policies.headers.cache", BrokenCache())
    rule_sets._checked_at = 0.0  # force the next stamp check now
    response = client.get("/t/plain/", secure=True)
    assert response.status_code == HTTPStatus.OK
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_a_failed_stamp_bump_is_logged_and_caught_by_the_timer(monkeypatch, caplog):
    from policies import headers

    class BrokenCache:
        def set(self, *args, **kwargs):
            raise ConnectionError("cache down")

    monkeypatch.setattr("policies.headers.cache", BrokenCache())
    headers.bump_stamp()  # does not raise: the change it follows is committed
    assert "could not bump" in caplog.text
    monkeypatch.undo()
    first = headers.rule_sets.get()
    headers.rule_sets._checked_at = headers.rule_sets._loaded_at = -headers.FULL_RELOAD_SECONDS
    assert headers.rule_sets.get() is not first  # reloaded though the stamp did not change


@pytest.mark.parametrize("change", ["update", "delete", "rollback", "reset", "disable"])
def test_every_kind_of_rule_change_bumps_the_stamp(
    actor, change, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from policies.headers import STAMP_KEY
    from policies.models import AuditEntry

    rule = add_rule(actor, name="bumped", path="/t/")
    cache.set(STAMP_KEY, "before")
    with django_capture_on_commit_callbacks(execute=True):
        if change == "update":
            services.rule_update(rule=rule, changes={"priority": 7}, version=1, actor=actor, **WHY)
        elif change == "delete":
            services.rule_delete(rule=rule, version=1, actor=actor, **WHY)
        elif change == "rollback":
            entry = AuditEntry.objects.get(object_type="header_rule", object_id=str(rule.pk))
            services.change_rollback(entry=entry, actor=actor, reason="undo")
        elif change == "reset":
            call_command("headers_reset", reason="reset", verbosity=0)
        else:
            services.rule_disable(rule=rule, actor=actor, **WHY)
    assert cache.get(STAMP_KEY) != "before"


def test_headers_reset_disables_a_rule_that_todays_validation_refuses(actor):
    from django.db import connection

    rule = add_rule(actor, name="legacy", path="/t/", custom_headers={"X-Old": "1"})
    with connection.cursor() as cursor:  # as saved before custom headers could not shadow CSP
        cursor.execute(
            "UPDATE policies_headerrule SET custom_headers = %s WHERE id = %s",
            ['{"Content-Security-Policy": "default-src *"}', rule.pk],
        )
    call_command("headers_reset", reason="legacy rule in the way", verbosity=0)
    assert not HeaderRule.objects.get(name="legacy").enabled
