"""Property tests: whatever an admin types, a header value either is refused or is safe to send."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from policies import validators

SAFE_VALUE = re.compile(r"[\x20-\x7e]*")
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


@given(
    st.dictionaries(
        st.sampled_from([*sorted(validators.CSP_DIRECTIVES), "script-source"]),
        st.lists(header_text, max_size=4),
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
