"""The one place that turns an error into the API's `{"code", "detail", ...}` body; and the
permission check the report endpoints share."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, permissions
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
