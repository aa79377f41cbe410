"""Whatever an admin types into a rule: a field error, or exactly the headers the preview shows.

Arbitrary text goes into every rule field (choice, number and yes/no fields included, and header
values long enough to reach the 8 KiB cap), through the services and through the admin's form.
A refusal must be a ValidationError on a field; a saved rule must send, over HTTP and HTTPS, to
anonymous and signed-in users, exactly the headers the preview shows, and no others.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from policies import presets, services, validators
from policies.forms import RuleForm, editable_fields
from policies.headers import CSP, CSP_REPORT_ONLY, preview, rule_sets
from policies.models import HeaderRule
from tests.headers.test_apply import parse_csp

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.headers.urls")]

PATH = "/p/"  # served by a page that reads request.user (tests/headers/urls.py)
HOST = "testserver"
RULE_FIELDS = frozenset(editable_fields(HeaderRule))
# Headers the framework adds whatever the rules say; anything else must be in the preview.
FRAMEWORK_HEADERS = {"content-type", "content-length", "x-request-id", "vary", "set-cookie"}
# (secure, signed in): every way a response on PATH can differ by who asks and how.
AUDIENCES = [(True, False), (True, True), (False, False), (False, True)]

# --- Strategies -------------------------------------------------------------------------------

characters = st.one_of(
    st.characters(codec="ascii"),
    st.sampled_from(["\r", "\n", "\x00", "é", "\u202e", ";", ",", "'", '"', " ", "{", "(", "\\"]),
)
text = st.text(alphabet=characters, max_size=24)
visible = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _repeated(chunk: str, size: int) -> str:
    return (chunk * (size // len(chunk) + 1))[:size]


# Cheap long text: a short chunk repeated, around and past the 8 KiB cap (up to 9000 characters).
sizes = st.one_of(st.integers(0, 9000), st.sampled_from([8191, 8192, 8193]))
long_text = st.builds(_repeated, st.text(alphabet=characters, min_size=1, max_size=3), sizes)
long_visible = st.builds(
    _repeated,
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=3),
    sizes,
)
any_text = st.one_of(text, long_text)


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """Valid five times in six: with many fields each odd now and then, many examples are
    still saved and reach the wire."""
    # (st.one_of drops repeated strategies, so repeating `valid` would not weigh it.)
    return st.integers(0, 5).flatmap(lambda pick: valid if pick else odd)


header_value = mostly(
    st.one_of(st.text(alphabet=visible, max_size=24).map(str.strip), long_visible),
    any_text,
)


def choice_of(field: str) -> st.SearchStrategy:
    """A choice field's valid values, or blank (arbitrary text comes from `rule_fields`)."""
    valid = [value for value, _label in HeaderRule._meta.get_field(field).choices]
    return st.sampled_from(["", *valid])


source = mostly(
    st.sampled_from(
        [
            "'self'",
            "'none'",
            "https:",
            "data:",
            "https://a.example",
            "*.example.com:443",
            "'unsafe-inline'",
            "'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='",
            "/csp-report/",
            "allow-forms",
            "'allow'",
            "csp",
        ]
    ),
    st.one_of(
        st.sampled_from(
            [
                "'nonce-abc'",
                "self",
                "a;b",
                "a b",
                "'sha256-YWJj'",
                "/csp;script-src",
                "/csp,default-src",
                'https://a"b.example',
                "a.example:99999",
            ]
        ),
        text,
        long_visible,
    ),
)
header_name = mostly(
    st.sampled_from(["X-Test", "X-Robots-Tag", "X-Powered-By", "Server", "x-test"]),
    st.one_of(st.sampled_from(["Set-Cookie", "Content-Security-Policy", "Vary"]), text),
)
csp = st.dictionaries(
    mostly(st.sampled_from(sorted(validators.CSP_DIRECTIVES)), text),
    st.lists(source, max_size=3),
    max_size=4,
)
permissions_policy = st.dictionaries(
    mostly(st.sampled_from(["camera", "geolocation", "fullscreen"]), text),
    st.lists(
        mostly(
            st.sampled_from(["self", "*", "https://a.example", "src"]),
            st.one_of(st.sampled_from(['https://a"b.example', "https://a/?q"]), text),
        ),
        max_size=2,
    ),
    max_size=2,
)
reporting_endpoints = st.dictionaries(
    mostly(st.sampled_from(["csp", "other"]), text),
    mostly(
        st.sampled_from(["/csp-report/", "https://r.example/r"]),
        st.one_of(st.just('/x"y'), text),
    ),
    max_size=1,
)
custom_headers = st.dictionaries(header_name, header_value, max_size=2)
remove_headers = st.lists(header_name, max_size=2)
path = mostly(
    st.sampled_from(["/p/", "/", "/p", "/q/", "^/p/$", "^/p"]),
    st.sampled_from(["p", "[p]", "a{4294967296}", "(unclosed", "/p/ x"]),
)
host = st.sampled_from(["", "", HOST, "other.example", "TestServer"])


# Plausible values for each field, as a caller of the services passes them (a JSON API passes
# the same types): mostly valid, with the usual mistakes (bad sources, forbidden headers...).
plausible = {
    "name": mostly(
        st.sampled_from(["a", "b-c", "rule_1"]), st.sampled_from(["site-wide", "x" * 101])
    ),
    "description": any_text,
    "match_type": st.sampled_from(["prefix", "exact", "regex"]),
    "path": path,
    "host": host,
    "priority": mostly(st.integers(0, 1000), st.one_of(st.integers(), st.sampled_from([-1, 1001]))),
    "enabled": st.booleans(),
    "mode": st.sampled_from(["enforce", "report_only"]),
    "csp": csp,
    "hsts_max_age": mostly(
        st.one_of(st.none(), st.integers(0, 2 * 31_536_000)), st.integers(-(2**40), 2**40)
    ),
    "hsts_include_subdomains": mostly(st.just(False), st.just(True)),
    "hsts_preload": mostly(st.just(False), st.just(True)),
    "x_frame_options": choice_of("x_frame_options"),
    "referrer_policy": choice_of("referrer_policy"),
    "permissions_policy": permissions_policy,
    "cross_origin_opener_policy": choice_of("cross_origin_opener_policy"),
    "cross_origin_embedder_policy": choice_of("cross_origin_embedder_policy"),
    "cross_origin_resource_policy": choice_of("cross_origin_resource_policy"),
    "x_content_type_options_nosniff": st.booleans(),
    "cache_control": mostly(st.sampled_from(["", "no-store", "private, max-age=0"]), header_value),
    "x_permitted_cross_domain_policies": choice_of("x_permitted_cross_domain_policies"),
    "reporting_endpoints": reporting_endpoints,
    "custom_headers": custom_headers,
    "remove_headers": remove_headers,
    "owner": mostly(st.text(max_size=24), any_text),
    "expected_result": any_text,
    "notes": any_text,
}
assert set(plausible) == RULE_FIELDS  # every rule field


def corrupted(fields) -> st.SearchStrategy:
    """Which fields get arbitrary text instead: none in half the examples, else one to three."""
    some = st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True)
    return st.one_of(st.just([]), some)


@st.composite
def rule_fields(draw) -> dict:
    """Some fields with plausible values, and a few (any of them) with arbitrary text instead:
    most examples are then saved, and every field still sees arbitrary text."""
    fields = draw(st.fixed_dictionaries({}, optional=plausible))
    for field in draw(corrupted(RULE_FIELDS)):
        fields[field] = draw(any_text)
    return fields


def _json_box(structure: st.SearchStrategy) -> st.SearchStrategy:
    """What an admin types into a JSON box: JSON of the right shape, or of another."""
    return mostly(
        structure.map(json.dumps), st.sampled_from(["", "null", "[]", "1", '"x"', '{"a": NaN}'])
    )


CHECKBOXES = frozenset(
    {"enabled", "hsts_include_subdomains", "hsts_preload", "x_content_type_options_nosniff"}
)
# The admin's rule form as a browser posts it: text everywhere, a ticked box sends "on".
form_plausible = {
    "enabled": mostly(st.just("on"), st.just("")),
    **{field: mostly(st.just(""), st.just("on")) for field in CHECKBOXES - {"enabled"}},
    "name": plausible["name"],
    "description": any_text,
    "match_type": st.sampled_from(["prefix", "exact", "regex"]),
    "path": path,
    "host": host,
    "priority": plausible["priority"].map(str),
    "mode": st.sampled_from(["enforce", "report_only"]),
    "csp": _json_box(csp),
    "hsts_max_age": st.one_of(st.just(""), plausible["hsts_max_age"].map(str)),
    "x_frame_options": choice_of("x_frame_options"),
    "referrer_policy": choice_of("referrer_policy"),
    "permissions_policy": _json_box(permissions_policy),
    "cross_origin_opener_policy": choice_of("cross_origin_opener_policy"),
    "cross_origin_embedder_policy": choice_of("cross_origin_embedder_policy"),
    "cross_origin_resource_policy": choice_of("cross_origin_resource_policy"),
    "cache_control": plausible["cache_control"],
    "x_permitted_cross_domain_policies": choice_of("x_permitted_cross_domain_policies"),
    "reporting_endpoints": _json_box(reporting_endpoints),
    "custom_headers": _json_box(custom_headers),
    "remove_headers": remove_headers.map(", ".join),
    "owner": plausible["owner"],
    "expected_result": any_text,
    "notes": any_text,
    "reason": mostly(st.just("Try it."), st.sampled_from(["", "  "])),
    "rollback_note": mostly(st.just("Delete it."), st.just("")),
}
assert set(form_plausible) == RULE_FIELDS | {"reason", "rollback_note"}


@st.composite
def form_fields(draw) -> dict:
    fields = draw(st.fixed_dictionaries({}, optional=form_plausible))
    for field in draw(corrupted(form_plausible)):
        fields[field] = draw(any_text)
    return fields


# What a fresh add form posts untouched (its initial values), plus a name and this test's path.
BLANK_FORM = {
    "match_type": "prefix",
    "path": PATH,
    "priority": "1000",
    "enabled": "on",
    "mode": "enforce",
    "csp": "{}",
    "permissions_policy": "{}",
    "reporting_endpoints": "{}",
    "custom_headers": "{}",
    "remove_headers": "",
    "reason": "Try it.",
    "rollback_note": "Delete it.",
}


# --- Oracles ----------------------------------------------------------------------------------


def _headers_on_the_wire(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def _same_value(header: str, emitted: str, previewed: str) -> bool:
    if header in (CSP.lower(), CSP_REPORT_ONLY.lower()):
        return parse_csp(emitted) == parse_csp(previewed)
    return emitted == previewed


def _matches(rule: HeaderRule) -> bool:
    if rule.host not in ("", HOST) or not rule.enabled:
        return False
    if rule.match_type == "exact":
        return rule.path == PATH
    if rule.match_type == "prefix":
        return PATH.startswith(rule.path)
    return re.search(rule.path, PATH) is not None


def _outranks_site_wide(rule: HeaderRule) -> bool | None:
    """DESIGN.md's precedence against the one seeded rule that matches PATH (prefix "/",
    priority 100): higher priority, then exact before prefix (longer first) before regex.
    None for a tie DESIGN.md leaves open."""
    rank = {"exact": 0, "prefix": 1, "regex": 2}[rule.match_type]
    mine = (-rule.priority, rank, -len(rule.path) if rule.match_type == "prefix" else 0)
    site = (-100, 1, -1)
    return None if mine == site else mine < site


def _assert_independent_oracle(rule: HeaderRule, emitted: dict[str, str]) -> None:
    """What the rule alone says must be sent, worked out without the preview."""
    applies = _matches(rule)
    wins = _outranks_site_wide(rule) if applies else False
    enforced = rule.mode == "enforce"
    if wins is None:
        return
    if applies and rule.csp and enforced and wins:
        assert parse_csp(emitted[CSP.lower()]) == rule.csp
    else:
        assert parse_csp(emitted[CSP.lower()]) == presets.STRICT_CSP
    if applies and rule.csp and not enforced:
        assert parse_csp(emitted[CSP_REPORT_ONLY.lower()]) == rule.csp
    else:
        assert CSP_REPORT_ONLY.lower() not in emitted
    for header, value in rule.custom_headers.items():
        sent = emitted.get(header.lower())
        if not (applies and enforced):
            assert sent is None or header.lower() == "server", f"{header} sent, rule not in force"
        elif header.lower() != "x-powered-by" or wins:  # site-wide removes X-Powered-By
            assert sent == value


def _assert_sent_as_previewed(rule: HeaderRule, clients: dict[bool, Client]) -> None:
    for secure, signed_in in AUDIENCES:
        response = clients[signed_in].get(PATH, secure=secure)
        assert response.status_code == 200, (secure, signed_in)
        who = b"Signed in as owner" if signed_in else b"Signed in as anonymous"
        assert who in response.content  # the page read request.user
        shown = {
            row.header.lower(): row.value
            for row in preview(PATH, HOST, secure=secure, authenticated=signed_in)
            if row.note in ("", "no rule sets it", "report-only")
            or row.note.startswith("plus the page's nonce")
        }
        emitted = _headers_on_the_wire(response)
        for header, value in shown.items():
            assert header in emitted, f"{header} previewed but not sent {(secure, signed_in)}"
            assert _same_value(header, emitted[header], value), (header, secure, signed_in)
        unshown = set(emitted) - FRAMEWORK_HEADERS - set(shown)
        assert not unshown, f"sent but not previewed {(secure, signed_in)}: {unshown}"
        _assert_independent_oracle(rule, emitted)


def _assert_a_field_refusal(refusal: ValidationError, fields: set[str]) -> None:
    """A refusal names the field at fault. The only field not among those given: HSTS options
    without a max-age are refused on the (missing) max-age."""
    assert hasattr(refusal, "error_dict"), f"a refusal on no field: {refusal.messages}"
    where = set(refusal.message_dict)
    assert NON_FIELD_ERRORS not in where, refusal.message_dict
    assert where <= RULE_FIELDS, where
    assert where <= fields | {"hsts_max_age"}, (where, fields)


@pytest.fixture
def clients(owner) -> dict[bool, Client]:
    signed_in = Client()
    signed_in.force_login(owner)
    return {False: Client(), True: signed_in}


@pytest.fixture(autouse=True)
def fresh_rules():
    rule_sets.clear()
    yield
    rule_sets.clear()


def _delete(rule: HeaderRule, actor) -> None:
    rule = HeaderRule.objects.get(pk=rule.pk)
    services.rule_delete(
        rule=rule, version=rule.version, actor=actor, reason="prop", rollback_note="x"
    )
    rule_sets.clear()


# --- Properties -------------------------------------------------------------------------------

BOUNDED = settings(
    max_examples=500,  # a few seconds each
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@BOUNDED
@given(fields=rule_fields())
def test_a_rule_is_refused_on_a_field_or_sent_exactly_as_previewed(clients, actor, fields):
    data = {"name": f"prop-{uuid.uuid4().hex[:12]}", "priority": 1000, "path": PATH, **fields}
    try:
        with transaction.atomic():
            rule = services.rule_create(data=data, actor=actor, reason="prop", rollback_note="x")
    except ValidationError as refusal:
        _assert_a_field_refusal(refusal, set(data))
        for field in sorted(refusal.message_dict):
            event(f"refused on {field}")
        if "8 KiB" in str(refusal.messages):
            event("refused: a header over 8 KiB")
        return
    event("saved")
    rule_sets.clear()
    try:
        _assert_sent_as_previewed(rule, clients)
    finally:
        _delete(rule, actor)


@BOUNDED
@given(fields=form_fields())
def test_the_admin_rule_form_refuses_on_a_field_or_saves_what_the_preview_shows(
    clients, actor, fields
):
    data = {"name": f"form-{uuid.uuid4().hex[:12]}", **BLANK_FORM, **fields}
    for box in CHECKBOXES:  # an unticked box sends nothing
        if data.get(box) == "":
            del data[box]
    form = RuleForm(data=data)
    if not form.is_valid():
        for field in sorted(form.errors):
            event(f"refused on {field}")
        assert form.errors
        assert NON_FIELD_ERRORS not in form.errors, form.errors
        assert set(form.errors) <= set(form.fields)
        assert set(form.errors) <= set(data) | {"hsts_max_age"}, (form.errors, data)
        return
    try:
        with transaction.atomic():  # as the admin saves: the service, with the form's values
            rule = services.rule_create(data=form.model_data(), actor=actor, **form.why())
    except ValidationError as refusal:
        event("refused by the service")
        shown_again = type("RefusedRuleForm", (RuleForm,), {"service_error": refusal})(data=data)
        assert not shown_again.is_valid()
        assert NON_FIELD_ERRORS not in shown_again.errors, shown_again.errors
        return
    event("saved")
    rule_sets.clear()
    try:
        _assert_sent_as_previewed(rule, clients)
    finally:
        _delete(rule, actor)


def test_a_header_value_past_8_kib_is_refused_on_its_field_one_at_it_is_saved(actor):
    """The edge the long values above aim at (they reach 9000 characters)."""
    too_long = "a" * (validators.MAX_HEADER_VALUE_BYTES + 1)
    with pytest.raises(ValidationError) as caught:
        services.rule_create(
            data={"name": "long", "path": PATH, "custom_headers": {"X-Long": too_long}},
            actor=actor,
            reason="prop",
            rollback_note="x",
        )
    assert set(caught.value.message_dict) == {"custom_headers"}
    at_the_cap = too_long[:-1]
    rule = services.rule_create(
        data={"name": "long", "path": PATH, "custom_headers": {"X-Long": at_the_cap}},
        actor=actor,
        reason="prop",
        rollback_note="x",
    )
    assert rule.custom_headers["X-Long"] == at_the_cap
