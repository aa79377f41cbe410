"""Review of issue #3: the header middleware's baseline, queries, order, cache keys, log and CSP.

A. `make bench`'s baseline drops both rule middlewares.
B. Cache-Control only for a signed-in user the page looked at: no queries of its own.
C. Answers made outside the view (APPEND_SLASH redirect, a disallowed host's 400) get the CSP.
E. The resolution cache is keyed on the validated host and bounded for long paths.
F. The rehearsal log writes the path with repr(), so a %0A cannot forge a line.
H. django-csp's EXCLUDE_URL_PREFIXES is honoured.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from http import HTTPStatus

import pytest
from csp.decorators import csp_exempt
from django.conf import settings as django_settings
from django.db.utils import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.test import Client, RequestFactory
from django.urls import include, path
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from policies import headers, services
from policies.headers import MAX_CACHED_PATH, MAX_REMEMBERED_HOSTS, RuleSet, rule_sets
from policies.middleware import RequestNonce, lazy_nonce, make_nonce

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.headers.test_review_middleware")]
WHY = {"reason": "test", "rollback_note": "delete the rule"}
CSP = "Content-Security-Policy"
CSP_RO = "Content-Security-Policy-Report-Only"
SITE_WIDE_CSP = "default-src 'self'"


# --- Views and URLs of these tests ------------------------------------------------------------


def anonymous_page(request: HttpRequest) -> HttpResponse:
    """The same for everyone: never looks at request.user."""
    return HttpResponse("<!doctype html><title>same for all</title>")


def whoami(request: HttpRequest) -> HttpResponse:
    name = request.user.get_username() if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"<!doctype html><title>who</title><p>{name}")


async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(f"<!doctype html><p>{user.get_username() or 'anonymous'}")


class TokenWhoami(APIView):
    """DRF sets a real user object on the Django request; the lazy one is never evaluated."""

    authentication_classes = (TokenAuthentication,)
    permission_classes = (AllowAny,)

    def get(self, request):
        return Response({"ok": True})


@csp_exempt()
def exempt_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>e</title>")


_NONCE_PAGE = engines["django"].from_string(
    '<!doctype html><script nonce="{{ request.csp_nonce }}">1</script>'
)


def nonce_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_NONCE_PAGE.render({}, request))


def json_page(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("r/anonymous/", anonymous_page),
    path("r/whoami/", whoami),
    path("r/async-whoami/", async_whoami),
    path("r/token/", TokenWhoami.as_view()),
    path("r/exempt/", exempt_page),
    path("r/json/", json_page),
    path("r/nonce/", nonce_page),
    path("", include("project.urls")),
]
handler404 = "project.views.handler404"
handler500 = "project.views.handler500"


@pytest.fixture(autouse=True)
def fresh_rules(monkeypatch):
    """Rules reloaded per test; no stamp check in the middle of a query count."""
    rule_sets.clear()
    monkeypatch.setattr(headers, "STAMP_CHECK_SECONDS", 3600.0)
    yield
    rule_sets.clear()


def add_rule(actor, **data):
    rule = services.rule_create(data={"match_type": "prefix", **data}, actor=actor, **WHY)
    rule_sets.clear()
    return rule


# --- A. The benchmark's baseline ----------------------------------------------------------------


def test_the_bench_baseline_drops_both_rule_middlewares_and_keeps_djangos():
    from bench.run import HEADERS, RULE_CSP, stacks

    project = list(django_settings.MIDDLEWARE)
    built = stacks(project)
    baseline = built["no header middleware"]
    assert HEADERS not in baseline
    assert RULE_CSP not in baseline
    assert baseline == [m for m in project if m not in (HEADERS, RULE_CSP)]
    assert "django.middleware.security.SecurityMiddleware" in baseline
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in baseline
    assert built["rules"] == project
    static = built["static django-csp"]
    assert "csp.middleware.CSPMiddleware" in static
    assert HEADERS not in static
    assert RULE_CSP not in static


# --- B. Signed-in headers without queries -------------------------------------------------------


def test_a_signed_in_page_that_never_reads_the_user_costs_no_query(
    client, owner, django_assert_num_queries
):
    client.force_login(owner)
    client.get("/r/anonymous/", secure=True)  # warm-up: rules loaded
    with django_assert_num_queries(0):
        response = client.get("/r/anonymous/", secure=True)
    assert response.status_code == HTTPStatus.OK
    assert "Cache-Control" not in response  # the page is the same for everyone
    assert SITE_WIDE_CSP in response[CSP]


def test_a_bogus_session_cookie_costs_no_query(client, django_assert_num_queries):
    client.cookies[django_settings.SESSION_COOKIE_NAME] = "bogus-session-key-" + "x" * 20
    client.get("/r/anonymous/", secure=True)  # warm-up
    with django_assert_num_queries(0):
        response = client.get("/r/anonymous/", secure=True)
    assert response.status_code == HTTPStatus.OK
    assert "Cache-Control" not in response


def test_a_page_that_reads_the_user_is_no_store_when_signed_in(client, owner):
    assert "Cache-Control" not in client.get("/r/whoami/", secure=True)  # anonymous
    client.force_login(owner)
    response = client.get("/r/whoami/", secure=True)
    assert b"owner" in response.content
    assert response["Cache-Control"] == "no-store"
    # The same signed-in client on a page that does not look: no Cache-Control from the rules.
    assert "Cache-Control" not in client.get("/r/anonymous/", secure=True)


def test_an_async_view_awaiting_auser_counts_as_reading_the_user(client, owner):
    client.force_login(owner)
    response = client.get("/r/async-whoami/", secure=True)
    assert b"owner" in response.content
    assert response["Cache-Control"] == "no-store"


def test_a_user_set_by_drf_token_authentication_counts(client, owner):
    token = Token.objects.create(user=owner)
    response = client.get("/r/token/", secure=True, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == HTTPStatus.OK
    assert response["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.get("/r/token/", secure=True)  # anonymous


# --- C. Answers made outside the view get the CSP -----------------------------------------------


def test_the_append_slash_redirect_carries_the_site_wide_csp(client):
    response = client.get("/admin", secure=True)
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"] == "/admin/"
    assert SITE_WIDE_CSP in response[CSP]
    assert "frame-ancestors 'none'" in response[CSP]


def test_a_404_carries_the_site_wide_csp(client):
    response = client.get("/no/such/page", secure=True)  # no slash variant exists either
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert SITE_WIDE_CSP in response[CSP]


def test_the_400_for_a_host_not_allowed_carries_the_site_wide_csp(client):
    response = client.get("/r/anonymous/", secure=True, HTTP_HOST="attacker.example")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert SITE_WIDE_CSP in response[CSP]
    assert response["X-Frame-Options"] == "DENY"


def test_the_rule_csp_middleware_sits_directly_inside_the_headers_middleware():
    stack = list(django_settings.MIDDLEWARE)
    headers_at = stack.index("policies.middleware.RuleHeadersMiddleware")
    assert stack[headers_at + 1] == "policies.middleware.RuleCSPMiddleware"
    # The health check still answers before host validation (SecurityMiddleware, CommonMiddleware).
    health_at = stack.index("project.middleware.HealthCheckMiddleware")
    assert health_at < stack.index("django.middleware.security.SecurityMiddleware")
    assert health_at < stack.index("django.middleware.common.CommonMiddleware")


def test_a_nonce_page_and_csp_exempt_still_work_from_the_outer_position(client):
    assert CSP not in client.get("/r/exempt/", secure=True)
    response = client.get("/r/nonce/", secure=True)
    nonce = re.search(r'nonce="([^"]+)"', response.content.decode()).group(1)
    assert f"'nonce-{nonce}'" in response[CSP]
    assert "nonce-" not in client.get("/r/anonymous/", secure=True)[CSP]


# --- E. The resolution cache --------------------------------------------------------------------


def test_ten_thousand_bogus_hosts_take_one_cache_entry_per_path():
    rules = rule_sets.get()
    before = rules.cached_resolutions()
    first = rule_sets.resolve("bogus-0.example", "/r/anonymous/")
    for n in range(1, 10_000):
        assert rule_sets.resolve(f"bogus-{n}.example:{n % 65536}", "/r/anonymous/") is first
    assert rule_sets.get() is rules
    assert rules.cached_resolutions() == before + 1
    assert len(rules._hosts) <= MAX_REMEMBERED_HOSTS


def test_allowed_hosts_with_a_port_or_in_capitals_share_an_entry(settings):
    settings.ALLOWED_HOSTS = ["testserver", ".example.com"]
    rules = rule_sets.get()
    before = rules.cached_resolutions()
    for host in ("testserver", "TestServer:8443", "testserver:80"):
        rule_sets.resolve(host, "/r/anonymous/")
    assert rules.cached_resolutions() == before + 1
    rule_sets.resolve("uploads.example.com", "/r/anonymous/")
    assert rules.cached_resolutions() == before + 2


def test_a_rule_for_a_host_never_applies_to_a_host_django_refuses(client, actor, settings):
    add_rule(
        actor,
        name="evil-host",
        path="/",
        host="evil.example",
        priority=900,
        custom_headers={"X-Evil": "1"},
    )
    response = client.get("/r/anonymous/", HTTP_HOST="evil.example")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "X-Evil" not in response
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]
    assert client.get("/r/anonymous/", HTTP_HOST="evil.example")["X-Evil"] == "1"


def test_long_paths_are_resolved_without_caching(client, actor):
    add_rule(actor, name="long", path="/r/", priority=900, custom_headers={"X-Long": "1"})
    rules = rule_sets.get()
    long_path = "/r/" + "a" * MAX_CACHED_PATH
    before = rules.cached_resolutions()
    resolution = rule_sets.resolve("testserver", long_path)
    assert rules.cached_resolutions() == before
    assert ("X-Long", "1") in {(d.header, d.value) for d in resolution.decisions}
    response = client.get(long_path)  # a 404, with the rule's headers
    assert response["X-Long"] == "1"
    assert rules.cached_resolutions() == before


# --- F. The rehearsal log -----------------------------------------------------------------------


def test_a_newline_in_the_path_cannot_forge_a_log_line(client, actor, caplog):
    add_rule(
        actor,
        name="quiet",
        path="/r/",
        priority=500,
        mode="report_only",
        custom_headers={"X-Rehearsed": "1"},
    )
    with caplog.at_level(logging.INFO, logger="portcullis.headers"):
        client.get("/r/x%0A2026-01-01 00:00:00 CRITICAL forged line%0D")
    [record] = [r for r in caplog.records if "would set X-Rehearsed" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message
    assert "\r" not in message
    assert "'/r/x\\n2026-01-01 00:00:00 CRITICAL forged line\\r'" in message


# --- H. EXCLUDE_URL_PREFIXES --------------------------------------------------------------------


def test_exclude_url_prefixes_are_honoured(settings):
    settings.CONTENT_SECURITY_POLICY = {
        **settings.CONTENT_SECURITY_POLICY,
        "EXCLUDE_URL_PREFIXES": ["/r/"],
    }
    client = Client()  # its middleware is built now, reading the settings above
    assert CSP not in client.get("/r/anonymous/", secure=True)
    assert CSP not in client.get("/r/json/", secure=True)
    assert SITE_WIDE_CSP in client.get("/accounts/login/", secure=True)[CSP]
    rows = {row.header: row.note for row in headers.preview("/r/anonymous/")}
    assert rows[CSP] == "not sent: the path is in EXCLUDE_URL_PREFIXES"


def test_report_only_exclude_url_prefixes_are_honoured(settings, actor):
    add_rule(
        actor,
        name="ro-csp",
        path="/r/",
        priority=500,
        mode="report_only",
        csp={"default-src": ["'none'"]},
    )
    assert CSP_RO in Client().get("/r/anonymous/", secure=True)
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {
        "DIRECTIVES": {"default-src": ["'self'"]},
        "EXCLUDE_URL_PREFIXES": ["/r/"],
    }
    response = Client().get("/r/anonymous/", secure=True)
    assert CSP_RO not in response
    assert SITE_WIDE_CSP in response[CSP]  # the enforced policy is not excluded


# --- The cheaper nonce keeps django-csp's behaviour ------------------------------------------


def test_the_lazy_nonce_behaves_as_django_csps():
    request = RequestFactory().get("/")
    nonce = lazy_nonce(request)
    assert type(nonce) is RequestNonce
    assert not nonce  # CheckableLazyObject: false until read
    assert not hasattr(request, "_csp_nonce")
    copied = copy.copy(nonce)
    value = str(nonce)
    assert nonce
    assert request._csp_nonce == value == make_nonce(request)
    assert str(copied) == value  # a copy made before the read gives the same nonce
    assert len(value) == 24
    assert f"{nonce}" == value
    assert RequestNonce(request) == value
    other = RequestFactory().get("/")
    assert str(lazy_nonce(other)) != value


# --- The database down when the rules first load ------------------------------------------------


def test_a_database_that_does_not_answer_at_first_load_does_not_fail_requests(
    client, monkeypatch, caplog
):
    def unreachable(cls, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(RuleSet, "load", classmethod(unreachable))
        response = client.get("/r/anonymous/", secure=True)
        assert response.status_code == HTTPStatus.OK
        # Django's floor: the settings' CSP and SecurityMiddleware's headers.
        assert SITE_WIDE_CSP in response[CSP]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "Permissions-Policy" not in response
    assert "header rules could not be loaded" in caplog.text
    # The next check is due (counted back from now: the clock starts at boot, perhaps < 1 h ago).
    rule_sets._checked_at = time.monotonic() - headers.STAMP_CHECK_SECONDS
    assert "camera=()" in client.get("/r/anonymous/", secure=True)["Permissions-Policy"]
