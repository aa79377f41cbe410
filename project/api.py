"""The one place that turns an error into the API's `{"code", "detail", ...}` body; the
permission check the report endpoints share; and the pages the long lists answer in."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import set_rollback

from project.errors import ERROR_STATUS, PortcullisError

_DRF_CODES = {
    # DRF's ValidationError says "invalid"; our contract says "validation_error".
    "invalid": "validation_error",
}


def _field_messages(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(field): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            for field, msgs in detail.items()
        }
    return {
        "non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]
    }


def validation_body(detail: Any) -> dict[str, Any]:
    fields = _field_messages(detail)
    first = next((msgs[0] for msgs in fields.values() if msgs), "The request is not valid.")
    return {"code": "validation_error", "detail": first, "fields": fields}


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, exceptions.APIException):
        return exc
    return None


def _code_for(api_exc: exceptions.APIException) -> str:
    """The exception's code if ERROR_STATUS lists it, else its class's, else a generic one."""
    codes = api_exc.get_codes()
    for code in (codes if isinstance(codes, str) else None, api_exc.default_code):
        code = _DRF_CODES.get(code, code)
        if code in ERROR_STATUS:
            return code
    if api_exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return "server_error"
    return "bad_request"


def _response_for(api_exc: exceptions.APIException) -> Response:
    headers = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if isinstance(api_exc, exceptions.ValidationError):
        return Response(validation_body(api_exc.detail), status=api_exc.status_code)
    body: dict[str, Any] = {"code": _code_for(api_exc), "detail": str(api_exc.detail)}
    if isinstance(api_exc, exceptions.Throttled) and api_exc.wait is not None:
        body["retry_after"] = math.ceil(api_exc.wait)
        headers["Retry-After"] = str(body["retry_after"])
    return Response(body, status=api_exc.status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER. Unknown exceptions return None so Django's handler500 answers."""
    if isinstance(exc, PortcullisError):
        set_rollback()
        headers = (
            {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else {}
        )
        return Response(exc.as_body(), status=exc.status, headers=headers)
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        return None
    set_rollback()
    return _response_for(api_exc)


def holding(perm: str) -> type[permissions.BasePermission]:
    """A permission class: signed in and holding `perm` ("app.codename")."""

    class Holds(permissions.BasePermission):
        def has_permission(self, request, view) -> bool:
            return bool(request.user and request.user.has_perm(perm))

    Holds.__name__ = f"Holds_{perm.replace('.', '_')}"
    return Holds


class Pages(LimitOffsetPagination):
    """Limit/offset pages whose parameters are checked: `limit` 1 to MAX_LIMIT, `offset` 0 to
    MAX_OFFSET; anything else is a validation_error rather than a quiet fall back to page one."""

    max_limit = 500
    max_offset = 1_000_000_000

    def get_limit(self, request: Request) -> int:
        return _counting_number(
            request, self.limit_query_param, self.default_limit, low=1, high=self.max_limit
        )

    def get_offset(self, request: Request) -> int:
        return _counting_number(request, self.offset_query_param, 0, low=0, high=self.max_offset)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": self.max_offset},
        }
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(bounds[parameter["name"]])
        return parameters


def _counting_number(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if re.fullmatch(r"[0-9]{1,10}", raw) and low <= int(raw) <= high:
        return int(raw)
    raise exceptions.ValidationError({name: [f"A whole number from {low} to {high}."]})


class JsonTypes:
    """Serializer mixin: each field takes only its own JSON type, as the API description says.
    DRF by itself reads 0.0 as the text "0.0", "3" as the number 3 and "yes" as true."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            wrong = {}
            for name, field in self.fields.items():
                expected = _json_type_of(field)
                value = data.get(name)
                if field.read_only or expected is None or value is None:
                    continue
                if not _is_of(value, expected):
                    wrong[name] = [f"Must be {JSON_TYPE_NAMES[expected]}."]
            if wrong:
                raise exceptions.ValidationError(wrong)
        return super().to_internal_value(data)


JSON_TYPES = (
    (serializers.BooleanField, bool),
    (serializers.IntegerField, int),
    (serializers.CharField, str),
)
JSON_TYPE_NAMES = {bool: "true or false", int: "a whole number", str: "a string"}


def _json_type_of(field: serializers.Field) -> type | None:
    return next((json_type for kind, json_type in JSON_TYPES if isinstance(field, kind)), None)


def _is_of(value: Any, expected: type) -> bool:
    # True is an int in Python, not in JSON.
    return isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
