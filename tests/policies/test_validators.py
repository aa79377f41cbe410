"""Property tests: whatever an admin types, a header value either is refused or is safe to send."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from policies import validators

SAFE_VALUE = re.compile(r"[\x20-\x7e]*")
# Tokens some directive accepts, and nonces that none may store.
TRICKY_SOURCES = [
    "'self'",
    "'script'",
    "my-policy",
    "'allow-duplicates'",
    "'nonce-abc'",
    "'NONCE-x'",
]
header_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="ascii"), st.sampled_from(["\r", "\n", "\x00", "é", "\u202e", ";", ","])
    ),
    max_size=60,
)


@given(header_text)
def test_header_values_are_refused_or_visible_ascii(value):
    try:
        validators.validate_header_value(value)
    except ValidationError:
        return
    assert SAFE_VALUE.fullmatch(value)
    assert not set(value) & {"\r", "\n", "\x00"}
    assert value == value.strip()


@given(header_text)
def test_header_names_are_refused_or_tokens_we_may_set(name):
    try:
        validators.validate_header_name(name)
    except ValidationError:
        return
    assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name)
    assert name.lower() not in validators.FORBIDDEN_HEADERS
    assert not name.lower().startswith(("access-control-", "x-accel-"))


@given(
    st.dictionaries(
        st.sampled_from([*sorted(validators.CSP_DIRECTIVES), "script-source"]),
        st.lists(st.one_of(st.sampled_from(TRICKY_SOURCES), header_text), max_size=4),
        max_size=4,
    )
)
def test_csp_is_refused_or_every_source_is_one_safe_token(directives):
    try:
        validators.validate_csp(directives)
    except ValidationError:
        return
    for name, sources in directives.items():
        assert name in validators.CSP_DIRECTIVES
        for source in sources:
            assert SAFE_VALUE.fullmatch(source)
            assert not re.search(r"[\s;,]", source)
            assert not source.lower().startswith("'nonce-")


def test_values_over_8_kib_are_refused():
    validators.validate_header_value("a" * 8192)
    with pytest.raises(ValidationError, match="8 KiB"):
        validators.validate_header_value("a" * 8193)


@pytest.mark.parametrize(
    "source",
    [
        "'self'",
        "'none'",
        "https:",
        "data:",
        "https://cdn.example.com",
        "*.example.com:443",
        "'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='",
        "example.com/path/",
    ],
)
def test_valid_csp_sources_pass(source):
    validators.validate_csp({"img-src": [source]})


def test_none_must_stand_alone():
    with pytest.raises(ValidationError, match="only source"):
        validators.validate_csp({"img-src": ["'none'", "'self'"]})


# --- CSP: nonces, Trusted Types, hashes ----------------------------------------------------------


@pytest.mark.parametrize("directive", sorted(validators.CSP_DIRECTIVES))
@pytest.mark.parametrize("nonce", ["'nonce-abc'", "'NONCE-abc'"])
def test_no_directive_stores_a_nonce(directive, nonce):
    with pytest.raises(ValidationError, match="do not store a nonce"):
        validators.validate_csp({directive: [nonce]})


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["my-policy"],
        ["dompurify", "app#1", "a=b_c/d@e.f%20"],
        ["default", "'allow-duplicates'"],
        ["'none'"],
        ["'NONE'"],
    ],
)
def test_trusted_types_takes_policy_names_and_its_keywords(values):
    validators.validate_csp({"trusted-types": values})


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["'script'"], "must be a policy name"),
        (["'self'"], "must be a policy name"),
        (["*"], "must be a policy name"),
        (["a'b"], "must be a policy name"),
        (["'none'", "my-policy"], "'none' must be the only value"),
    ],
)
def test_trusted_types_refuses_anything_else(values, fragment):
    with pytest.raises(ValidationError, match=fragment):
        validators.validate_csp({"trusted-types": values})


@pytest.mark.parametrize("values", [["'script'"], ["'SCRIPT'"]])
def test_require_trusted_types_for_takes_script(values):
    validators.validate_csp({"require-trusted-types-for": values})


@pytest.mark.parametrize(
    "values", [[], ["script"], ["'self'"], ["'script'", "'script'"], ["'style'"], ["*"]]
)
def test_require_trusted_types_for_takes_nothing_but_script(values):
    with pytest.raises(ValidationError, match="give exactly 'script'"):
        validators.validate_csp({"require-trusted-types-for": values})


DIGEST_256 = "blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU="


@pytest.mark.parametrize(
    "source",
    [
        f"'SHA256-{DIGEST_256}'",
        f"'Sha256-{DIGEST_256}'",
        f"'SHA384-{'A' * 64}'",
        f"'sHa512-{'b' * 86}=='",
    ],
)
def test_hash_algorithms_are_matched_ignoring_case(source):
    directives = {"style-src": [source]}
    validators.validate_csp(directives)
    assert directives == {"style-src": [source]}  # kept as written


@pytest.mark.parametrize("source", [f"'SHA256-{DIGEST_256[:-2]}'", f"'SHA1-{DIGEST_256}'"])
def test_hashes_of_the_wrong_length_or_algorithm_are_refused_in_any_case(source):
    with pytest.raises(ValidationError, match="not a CSP keyword or hash"):
        validators.validate_csp({"style-src": [source]})


# --- Custom header names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Refresh", "sends the browser elsewhere"),
        ("Link", "sends the browser elsewhere"),
        ("Access-Control-Allow-Origin", "CORS"),
        ("access-control-allow-credentials", "CORS"),
        ("Access-Control-Expose-Headers", "CORS"),
        ("Access-Control-Anything-New", "CORS"),
        ("Clear-Site-Data", "cookies, sign-in and stored site data"),
        ("Set-Cookie2", "cookies, sign-in and stored site data"),
        ("Alt-Svc", "connection and hop-by-hop"),
        ("Content-Location", "framing and body headers"),
        ("Content-Encoding", "framing and body headers"),
        ("Content-Range", "framing and body headers"),
        ("Accept-Ranges", "framing and body headers"),
        ("Content-Digest", "framing and body headers"),
        ("Repr-Digest", "framing and body headers"),
        ("Digest", "framing and body headers"),
        ("Expires", "caching headers belong to the app and the server"),
        ("ETag", "caching headers"),
        ("Age", "caching headers"),
        ("Last-Modified", "caching headers"),
        ("Vary", "caching headers"),
        ("X-Sendfile", "serve a file"),
        ("X-Accel-Redirect", "serve a file"),
        ("X-Accel-Some-Future-Thing", "serve a file"),
        ("X-Lighttpd-Send-File", "serve a file"),
        ("X-LiteSpeed-Location", "serve a file"),
        ("Public-Key-Pins", "pinning is obsolete"),
        ("Public-Key-Pins-Report-Only", "pinning is obsolete"),
        ("Content-Length", "framing"),
        ("Set-Cookie", "cookies"),
        ("Location", "sends the browser elsewhere"),
    ],
)
def test_forbidden_header_names_are_refused_with_the_reason(name, why):
    with pytest.raises(ValidationError) as caught:
        validators.validate_header_name(name)
    message = caught.value.messages[0]
    assert message.startswith(f"{name} cannot be set or removed by a rule: ")
    assert why in message


@pytest.mark.parametrize("name", ["X-Robots-Tag", "X-Accelerated", "Access-Controlled", "X-Linked"])
def test_names_that_only_resemble_forbidden_ones_pass(name):
    validators.validate_header_name(name)


# --- Cache-Control -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "no-store",
        "no-store, max-age=0",
        "private, no-cache, must-revalidate",
        "private,max-age=600,stale-while-revalidate=30,stale-if-error=86400",
        "No-Store, Immutable, no-transform",
        "max-age=2147483648",
    ],
)
def test_cache_control_takes_the_allowed_directives(value):
    validators.validate_cache_control(value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("public", "lets shared caches keep the page"),
        ("private, public", "lets shared caches keep the page"),
        ("s-maxage=60", "lets shared caches keep the page"),
        ("S-MAXAGE=60, private", "lets shared caches keep the page"),
        ("proxy-revalidate", "not allowed here"),
        ("no-store, anything", "not allowed here"),
        ('no-cache="Set-Cookie"', "not allowed here"),
        ("max-age", "takes a number of seconds"),
        ("max-age=soon", "takes a number of seconds"),
        ('max-age="60"', "takes a number of seconds"),
        ("max-age = 60", "not allowed here"),
        ("max-age=-1", "takes a number of seconds"),
        ("max-age=99999999999", "takes a number of seconds"),
        ("no-store,,private", "empty"),
        ("no-store, no-store", "listed twice"),
        ("max-age=0, max-age=60", "listed twice"),
        ("no-store\n", "visible ASCII"),
    ],
)
def test_cache_control_refuses_the_rest(value, fragment):
    with pytest.raises(ValidationError) as caught:
        validators.validate_cache_control(value)
    assert fragment in " ".join(caught.value.messages)


# --- Empty values, Permissions-Policy src ---------------------------------------------------------


@pytest.mark.parametrize("value", ["", " "])
def test_custom_headers_need_a_value(value):
    with pytest.raises(ValidationError):
        validators.validate_custom_headers({"X-Empty": value})


def test_an_empty_custom_header_says_how_to_drop_one_instead():
    with pytest.raises(ValidationError, match=r"X-Empty has no value.*headers to remove"):
        validators.validate_custom_headers({"X-Empty": ""})


def test_permissions_policy_refuses_src_which_only_iframes_understand():
    with pytest.raises(ValidationError, match="src only works in an iframe's allow attribute"):
        validators.validate_permissions_policy({"camera": ["src"]})


@pytest.mark.parametrize("allowlist", [[], ["self"], ["*"], ["self", "https://a.example"]])
def test_permissions_policy_still_takes_self_star_and_origins(allowlist):
    validators.validate_permissions_policy({"camera": allowlist})


def test_header_lines_are_counted_as_sent():
    assert validators.header_lines_bytes({"X-A": "1", "X-Bb": ""}) == len("X-A: 1\r\nX-Bb: \r\n")
