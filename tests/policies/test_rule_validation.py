"""Header rules refused by full_clean: each refusal lands on the field an admin has to change,
whether the rule comes through the services (the API) or the admin form."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from policies import services, validators
from policies.headers import CSP, csp_value, rule_headers
from policies.models import HeaderRule

WHY = {"reason": "Review of issue 3.", "rollback_note": "Delete the rule."}
BASE = {"name": "checked", "match_type": "prefix", "path": "/checked/"}
DIGEST_256 = "blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU="

pytestmark = pytest.mark.django_db


def create(actor, **fields: Any) -> HeaderRule:
    return services.rule_create(data={**BASE, **fields}, actor=actor, **WHY)


def refusal(actor, **fields: Any) -> dict[str, list[str]]:
    """The field errors of a refused create; asserts nothing was saved."""
    with pytest.raises(ValidationError) as caught:
        create(actor, **fields)
    assert not HeaderRule.objects.filter(name=BASE["name"]).exists()
    return caught.value.message_dict


def csp_of(size: int) -> dict[str, list[str]]:
    """A valid CSP whose header value is exactly `size` bytes."""
    hosts = ["'self'"]
    while len(csp_value({"default-src": hosts})) < size - 40:
        hosts.append(f"https://h{len(hosts):04}.example")
    pad = size - len(csp_value({"default-src": [*hosts, "https://a.example"]}))
    hosts.append("https://" + "a" * (pad + 1) + ".example")
    directives = {"default-src": hosts}
    assert len(csp_value(directives)) == size
    return directives


# --- 1. nonces and Trusted Types ---------------------------------------------------------------


@pytest.mark.parametrize(
    "csp",
    [
        {"trusted-types": ["'nonce-abc'"]},
        {"require-trusted-types-for": ["'nonce-abc'"]},
        {"sandbox": ["'nonce-abc'"]},
        {"script-src": ["'self'", "'NONCE-abc'"]},
    ],
)
def test_a_stored_nonce_is_refused_on_the_csp_field(actor, csp):
    errors = refusal(actor, csp=csp)
    assert "do not store a nonce" in " ".join(errors["csp"])


def test_trusted_types_are_saved_and_sent(actor):
    csp = {
        "default-src": ["'self'"],
        "require-trusted-types-for": ["'script'"],
        "trusted-types": ["app-policy", "'allow-duplicates'"],
    }
    rule = create(actor, csp=csp)
    assert "trusted-types app-policy 'allow-duplicates'" in rule_headers(rule)[CSP]


def test_require_trusted_types_for_other_than_script_is_refused(actor):
    errors = refusal(actor, csp={"require-trusted-types-for": ["'style'"]})
    assert "give exactly 'script'" in " ".join(errors["csp"])


# --- 2. the total size of a rule's headers -------------------------------------------------------


def test_six_8_kb_custom_headers_are_refused_naming_total_and_cap(actor):
    headers = {f"X-Big-{n}": "a" * 8000 for n in range(6)}
    errors = refusal(actor, custom_headers=headers)
    total = validators.header_lines_bytes(headers)
    assert errors == {
        "custom_headers": [
            f"This rule's headers would total {total} bytes (names and values); at most "
            "16384 bytes (16 KiB) fit through proxies. Shorten the largest ones."
        ]
    }


def test_the_cap_is_16_kib_of_header_lines(actor):
    # Three lines of "X-A: value\r\n": 3 * 7 bytes around the values.
    fits = {"X-A": "a" * 8000, "X-B": "b" * 8000, "X-C": "c" * 363}
    assert validators.header_lines_bytes(fits) == 16 * 1024
    rule = create(actor, custom_headers=fits)
    services.rule_delete(rule=rule, version=rule.version, actor=actor, **WHY)

    errors = refusal(actor, custom_headers={**fits, "X-C": "c" * 364})
    assert "would total 16385 bytes" in " ".join(errors["custom_headers"])


def test_the_csp_counts_toward_the_total_and_takes_the_blame_when_largest(actor):
    permissions = {"camera": [f"https://h{n:02}.example" for n in range(70)]}
    errors = refusal(
        actor,
        csp=csp_of(8100),
        custom_headers={"X-Note": "n" * 7000},
        permissions_policy=permissions,
    )
    assert list(errors) == ["csp"]
    assert "would total" in errors["csp"][0]


def test_a_single_header_over_8_kib_is_still_named_on_its_field(actor):
    errors = refusal(actor, csp=csp_of(8200))
    assert errors == {
        "csp": ["Content-Security-Policy would be 8200 bytes; at most 8 KiB fits through proxies."]
    }


# --- 3. forbidden custom header names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("custom_headers", {"Access-Control-Allow-Origin": "*"}),
        ("custom_headers", {"Refresh": "0; url=https://evil.example/"}),
        ("custom_headers", {"X-Accel-Redirect": "/protected/file"}),
        ("custom_headers", {"Link": "<https://evil.example/x.css>; rel=stylesheet"}),
        ("custom_headers", {"Expires": "0"}),
        ("remove_headers", ["ETag"]),
        ("remove_headers", ["Access-Control-Allow-Credentials"]),
    ],
)
def test_forbidden_names_are_refused_on_their_field(actor, field, value):
    errors = refusal(actor, **{field: value})
    assert "cannot be set or removed by a rule: " in " ".join(errors[field])


# --- 4. Cache-Control ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["public, max-age=3600", "private, s-maxage=60"])
def test_cache_control_that_lets_shared_caches_store_is_refused(actor, value):
    errors = refusal(actor, cache_control=value)
    assert "this header is for signed-in pages" in " ".join(errors["cache_control"])


def test_cache_control_outside_the_allowlist_is_refused(actor):
    errors = refusal(actor, cache_control="no-store, whatever")
    assert "'whatever' is not allowed here" in " ".join(errors["cache_control"])


def test_allowed_cache_control_is_saved_as_written(actor):
    rule = create(actor, cache_control="private, no-cache, max-age=0, must-revalidate")
    assert rule_headers(rule)["Cache-Control"] == "private, no-cache, max-age=0, must-revalidate"


# --- 5. empty values, src, hash case -------------------------------------------------------------


def test_an_empty_custom_header_value_is_refused(actor):
    errors = refusal(actor, custom_headers={"X-Empty": ""})
    assert "X-Empty has no value" in " ".join(errors["custom_headers"])


def test_src_in_a_permissions_policy_header_is_refused(actor):
    errors = refusal(actor, permissions_policy={"camera": ["self", "src"]})
    assert "src only works in an iframe's allow attribute" in " ".join(errors["permissions_policy"])


def test_an_upper_case_hash_algorithm_is_accepted_and_kept_as_written(actor):
    source = f"'SHA256-{DIGEST_256}'"
    rule = create(actor, csp={"style-src": ["'self'", source]})
    rule.refresh_from_db()
    assert rule.csp == {"style-src": ["'self'", source]}
    assert rule_headers(rule)[CSP] == f"style-src 'self' {source}"


# --- the admin shows the same refusals on the same fields ----------------------------------------


def test_the_admin_refuses_each_gap_on_its_field(client, editor):
    client.force_login(editor)
    data = {
        **BASE,
        "priority": 100,
        "mode": "enforce",
        "csp": '{"trusted-types": ["\'nonce-abc\'"]}',
        "permissions_policy": '{"camera": ["src"]}',
        "reporting_endpoints": "{}",
        "custom_headers": '{"X-Empty": "", "Clear-Site-Data": "\\"*\\""}',
        "remove_headers": "",
        "cache_control": "public",
        **WHY,
    }
    response = client.post(reverse("admin:policies_headerrule_add"), data)

    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert "do not store a nonce" in " ".join(errors["csp"])
    assert "src only works" in " ".join(errors["permissions_policy"])
    assert "X-Empty has no value" in " ".join(errors["custom_headers"])
    assert "Clear-Site-Data cannot be set" in " ".join(errors["custom_headers"])
    assert "signed-in pages" in " ".join(errors["cache_control"])
    assert not HeaderRule.objects.filter(name=BASE["name"]).exists()
