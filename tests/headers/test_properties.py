"""Whatever an admin types into a rule: a field error, or exactly the headers the preview shows."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from policies import services, validators
from policies.headers import CSP, CSP_REPORT_ONLY, preview, rule_sets
from tests.headers.test_apply import parse_csp

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.headers.urls")]

# Headers the framework adds whatever the rules say; anything else must be in the preview.
FRAMEWORK_HEADERS = {"content-type", "content-length", "x-request-id", "vary", "set-cookie"}

text = st.text(
    alphabet=st.one_of(
        st.characters(codec="ascii"),
        st.sampled_from(["\r", "\n", "\x00", "é", "\u202e", ";", ",", "'", '"', " "]),
    ),
    max_size=24,
)
source = st.one_of(
    st.sampled_from(
        [
            "'self'",
            "'none'",
            "https:",
            "data:",
            "https://a.example",
            "*.example.com:443",
            "'unsafe-inline'",
            "'nonce-abc'",
            "self",
            "a;b",
            "a b",
            "'sha256-YWJj'",
            "/csp-report/",
            "/csp;script-src",
            "/csp,default-src",
            'https://a"b.example',
            "a.example:99999",
            "'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='",
        ]
    ),
    text,
)
header_name = st.one_of(
    st.sampled_from(["X-Test", "Set-Cookie", "Content-Security-Policy", "X-Robots-Tag"]), text
)
rule_fields = st.fixed_dictionaries(
    {},
    optional={
        "csp": st.dictionaries(
            st.one_of(st.sampled_from(sorted(validators.CSP_DIRECTIVES)), text),
            st.lists(source, max_size=3),
            max_size=4,
        ),
        "custom_headers": st.dictionaries(header_name, text, max_size=2),
        "remove_headers": st.lists(header_name, max_size=2),
        "cache_control": text,
        "permissions_policy": st.dictionaries(
            st.one_of(st.sampled_from(["camera", "geolocation", "fullscreen"]), text),
            st.lists(
                st.one_of(
                    st.sampled_from(
                        ["self", "*", "https://a.example", 'https://a"b.example', "https://a/?q"]
                    ),
                    text,
                ),
                max_size=2,
            ),
            max_size=2,
        ),
        "reporting_endpoints": st.dictionaries(
            st.one_of(st.just("csp"), text),
            st.one_of(st.sampled_from(["/csp-report/", '/x"y', "https://r.example/r"]), text),
            max_size=1,
        ),
        "x_frame_options": st.sampled_from(["", "DENY", "SAMEORIGIN", "ALLOW-FROM x"]),
        "cross_origin_opener_policy": st.sampled_from(["", "same-origin", "unsafe-none", "x"]),
        "cross_origin_embedder_policy": st.sampled_from(["", "require-corp", "credentialless"]),
        "cross_origin_resource_policy": st.sampled_from(["", "same-site", "cross-origin"]),
        "x_content_type_options_nosniff": st.booleans(),
        "x_permitted_cross_domain_policies": st.sampled_from(["", "none", "all", "bogus"]),
        "hsts_include_subdomains": st.booleans(),
        "enabled": st.booleans(),
        "host": st.one_of(st.just(""), st.just("testserver"), st.just("other.example"), text),
        "referrer_policy": st.sampled_from(["", "same-origin", "no-referrer", "unsafe-url"]),
        "hsts_max_age": st.one_of(st.none(), st.integers(-5, 10**9)),
        "hsts_preload": st.booleans(),
        "mode": st.sampled_from(["enforce", "report_only", "sometimes"]),
        "path": st.one_of(st.just("/p/"), text),
        "match_type": st.sampled_from(["prefix", "exact", "regex", "glob"]),
    },
)


def _headers_on_the_wire(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def _same_value(header: str, emitted: str, previewed: str) -> bool:
    if header in (CSP.lower(), CSP_REPORT_ONLY.lower()):
        return parse_csp(emitted) == parse_csp(previewed)
    return emitted == previewed


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=rule_fields)
def test_a_rule_is_refused_or_sent_exactly_as_previewed(client, actor, fields):
    data = {"name": f"prop-{uuid.uuid4().hex[:12]}", "priority": 1000, "path": "/p/", **fields}
    try:
        with transaction.atomic():
            rule = services.rule_create(data=data, actor=actor, reason="prop", rollback_note="x")
    except ValidationError:
        event("refused")
        return
    event("saved")
    rule_sets.clear()
    try:
        response = client.get("/p/", secure=True)
        assert response.status_code != 500
        shown = {
            row.header.lower(): row.value
            for row in preview("/p/", secure=True, authenticated=False)
            if row.note in ("", "no rule sets it", "report-only")
            or row.note.startswith("plus the page's nonce")
        }
        emitted = _headers_on_the_wire(response)
        for header, value in shown.items():
            assert header in emitted, f"{header} previewed but not sent"
            assert _same_value(header, emitted[header], value)
        assert set(emitted) - FRAMEWORK_HEADERS <= set(shown), "a header the preview did not show"
        # An oracle independent of the preview: the winning rule's own CSP, as CSP3 parses it.
        applies = rule.enabled and rule.host in ("", "testserver")
        if applies and rule.csp:
            sent_as = CSP if rule.mode == "enforce" else CSP_REPORT_ONLY
            assert parse_csp(emitted[sent_as.lower()]) == rule.csp
    finally:
        services.rule_delete(
            rule=rule, version=rule.version, actor=actor, reason="prop", rollback_note="x"
        )
        rule_sets.clear()
