"""Odd input to a header rule is a validation message on its field, never an exception.

Through the services (what the admin and the API call) and through the admin's own form.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from policies import services
from policies.forms import RuleForm
from policies.models import HeaderRule

pytestmark = pytest.mark.django_db

WHY = {"reason": "Try it.", "rollback_note": "Delete it."}
RULE = {"name": "odd", "match_type": "prefix", "path": "/odd/"}


def refusal(actor, **fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        services.rule_create(data={**RULE, **fields}, actor=actor, **WHY)
    assert not HeaderRule.objects.filter(name=fields.get("name", "odd")).exists()
    assert hasattr(caught.value, "error_dict"), caught.value
    return caught.value.message_dict


@pytest.mark.parametrize(
    "path",
    [
        "a{4294967296}",  # Python's re: OverflowError, not re.error
        "x{1,99999999999999999999}",
    ],
)
def test_a_regex_path_python_cannot_compile_is_a_path_error(actor, path):
    errors = refusal(actor, match_type="regex", path=path)
    assert "path" in errors


@pytest.mark.parametrize("item", [[], {}, ["allow-forms"]])
def test_a_sandbox_flag_that_is_not_text_is_a_csp_error(actor, item):
    errors = refusal(actor, csp={"sandbox": [item]})
    assert set(errors) == {"csp"}


def test_preload_with_a_max_age_that_is_not_a_number_is_a_field_error(actor):
    errors = refusal(actor, hsts_max_age="a year", hsts_include_subdomains=True, hsts_preload=True)
    assert "hsts_max_age" in errors
    assert NON_FIELD_ERRORS not in errors


@pytest.mark.parametrize(
    "field", ["name", "description", "owner", "expected_result", "notes", "host", "path"]
)
def test_a_nul_character_in_a_text_field_is_a_field_error_or_saved(actor, field):
    """PostgreSQL cannot store NUL in text: there it must be refused on the field, not end in a
    DataError. (SQLite stores it; where it is refused, the message is on the field.)"""
    value = "/a\x00b" if field == "path" else "a\x00b"
    refused: ValidationError | None = None
    try:
        rule = services.rule_create(data={**RULE, field: value}, actor=actor, **WHY)
    except ValidationError as caught:
        refused = caught
    if refused is None:
        rule.refresh_from_db()
        assert getattr(rule, field) == value
    else:
        assert field in refused.message_dict


def _rule_form_data(**fields: str) -> dict[str, str]:
    return {
        "name": "odd",
        "match_type": "prefix",
        "path": "/odd/",
        "priority": "100",
        "enabled": "on",
        "mode": "enforce",
        "csp": "{}",
        "permissions_policy": "{}",
        "reporting_endpoints": "{}",
        "custom_headers": "{}",
        "remove_headers": "",
        **WHY,
        **fields,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"match_type": "regex", "path": "a{4294967296}"},
        {"csp": json.dumps({"sandbox": [[]]})},
        {"csp": json.dumps({"sandbox": [{"a": 1}]})},
    ],
)
def test_the_admin_form_shows_odd_input_on_its_field(fields):
    form = RuleForm(data=_rule_form_data(**fields))
    assert not form.is_valid()
    assert set(form.errors) <= set(fields) | {"path"}
    assert NON_FIELD_ERRORS not in form.errors


def test_the_admin_form_refuses_nul_in_text_on_the_field():
    form = RuleForm(data=_rule_form_data(description="a\x00b", owner="o\x00"))
    assert not form.is_valid()
    assert set(form.errors) == {"description", "owner"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hsts_max_age", ""),
        ("priority", ""),
        ("enabled", ""),
        ("hsts_include_subdomains", ""),
        ("hsts_preload", ""),
        ("x_content_type_options_nosniff", ""),
        ("enabled", "yes please"),
        ("priority", "high"),
        ("hsts_max_age", "a year"),
    ],
)
def test_a_blank_or_wordy_value_in_a_number_or_yes_no_field_is_a_field_error(actor, field, value):
    errors = refusal(actor, **{field: value})
    assert field in errors
    assert NON_FIELD_ERRORS not in errors
