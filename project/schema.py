"""What the OpenAPI description says about every endpoint (the error body, and which error
statuses an endpoint answers: drf-spectacular reads these through `extend_schema`), and the
query parameters several endpoints read the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from project.errors import ERROR_STATUS

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.ChoiceField(choices=sorted(ERROR_STATUS)),
        "detail": serializers.CharField(help_text="A sentence for people."),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Per-field messages (validation_error).",
        ),
        "retry_after": serializers.IntegerField(
            required=False, help_text="Seconds to wait (quota_exceeded, throttled)."
        ),
        "current_version": serializers.IntegerField(
            required=False, help_text="The object's version now (version_conflict)."
        ),
        "later_entries": serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            help_text="The audit entries to roll back first (rollback_conflict).",
        ),
    },
)


def errors(*codes: str) -> dict[int, OpenApiResponse]:
    """The error responses of an endpoint, by status, each naming the codes it can carry; every
    authenticated endpoint also answers 401."""
    by_status: dict[int, list[str]] = {}
    for code in ("not_authenticated", "authentication_failed", *codes):
        by_status.setdefault(int(ERROR_STATUS[code]), []).append(code)
    return {
        status: OpenApiResponse(ErrorSerializer, description="Codes: " + ", ".join(names) + ".")
        for status, names in sorted(by_status.items())
    }


def boolean_param(params: Mapping[str, str], name: str, *, default: bool) -> bool:
    """A true/false query parameter (as OpenAPI writes booleans, or 1/0); else validation_error."""
    raw = params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError({name: ["Either true or false."]})


def choice_param(params: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    """A query parameter that must be one of `choices` when given; else validation_error."""
    raw = params.get(name)
    if raw is None or raw in choices:
        return raw
    raise ValidationError({name: ["One of: " + ", ".join(choices) + "."]})


def within_dates(queryset: QuerySet, params: Mapping[str, str]) -> QuerySet:
    """`queryset` narrowed by the `since` (at or after) and `until` (before) parameters, read
    against its `created_at`."""
    for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
        if (raw := params.get(name)) is not None:
            queryset = queryset.filter(**{lookup: moment_param(name, raw)})
    return queryset


def moment_param(name: str, raw: str) -> datetime:
    """A date-and-time query parameter, with its offset; else a validation_error naming it."""
    try:
        moment = parse_datetime(raw)
        # In UTC: databases refuse some offsets Python takes (PostgreSQL: beyond ±15:59), and a
        # moment at the edge of the calendar must fail here, not in the query.
        moment = moment.astimezone(UTC) if moment and moment.tzinfo else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise ValidationError(
            {name: ["A date and time with its offset, e.g. 2026-12-01T09:00:00Z."]}
        )
    return moment


# Response bodies that never carry other keys; saying so lets a client tell the two answers of
# an upload-policy read apart (the limits, or the whole policy: `oneOf` needs exactly one match).
CLOSED_COMPONENTS = ("UploadPolicyLimits",)


def close_components(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: CLOSED_COMPONENTS allow no other properties."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
