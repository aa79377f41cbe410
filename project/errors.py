"""The error codes other code and other people rely on, and the exceptions that carry them.

DESIGN.md lists the contract's codes with their HTTP status; keep the two in step. Four codes here
are additions it does not list yet, to be listed there on purpose: DRF's own `not_acceptable` (406)
and `unsupported_media_type` (415), `bad_request` (a generic 400 for a malformed request no other
code names) and `server_error` (the 500).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

ERROR_STATUS: dict[str, HTTPStatus] = {
    # Uploads
    "file_required": HTTPStatus.BAD_REQUEST,
    "empty_file": HTTPStatus.BAD_REQUEST,
    "too_many_files": HTTPStatus.BAD_REQUEST,
    "file_too_large": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "request_too_large": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "filename_invalid": HTTPStatus.BAD_REQUEST,
    "extension_not_allowed": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "type_not_allowed": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "type_mismatch": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "image_invalid": HTTPStatus.UNPROCESSABLE_ENTITY,
    "image_too_large": HTTPStatus.UNPROCESSABLE_ENTITY,
    "active_content": HTTPStatus.UNPROCESSABLE_ENTITY,
    "archive_rejected": HTTPStatus.UNPROCESSABLE_ENTITY,
    "malware_detected": HTTPStatus.UNPROCESSABLE_ENTITY,
    "scanner_unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "quota_exceeded": HTTPStatus.TOO_MANY_REQUESTS,
    "policy_not_found": HTTPStatus.NOT_FOUND,
    "policy_disabled": HTTPStatus.FORBIDDEN,
    "idempotency_conflict": HTTPStatus.UNPROCESSABLE_ENTITY,
    "idempotency_in_progress": HTTPStatus.CONFLICT,
    # Policies and rules
    "version_conflict": HTTPStatus.CONFLICT,
    "rollback_conflict": HTTPStatus.CONFLICT,
    "policy_in_use": HTTPStatus.CONFLICT,
    "validation_error": HTTPStatus.BAD_REQUEST,
    # DRF's own, and Django's that never reach DRF
    "not_authenticated": HTTPStatus.UNAUTHORIZED,
    "authentication_failed": HTTPStatus.UNAUTHORIZED,
    "permission_denied": HTTPStatus.FORBIDDEN,
    "not_found": HTTPStatus.NOT_FOUND,
    "method_not_allowed": HTTPStatus.METHOD_NOT_ALLOWED,
    "not_acceptable": HTTPStatus.NOT_ACCEPTABLE,
    "unsupported_media_type": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "throttled": HTTPStatus.TOO_MANY_REQUESTS,
    "parse_error": HTTPStatus.BAD_REQUEST,
    "bad_request": HTTPStatus.BAD_REQUEST,
    "server_error": HTTPStatus.INTERNAL_SERVER_ERROR,
}


class PortcullisError(Exception):
    """A refusal with a stable `code`, a human `detail`, and optional extra body keys."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code!r}; add it to ERROR_STATUS and DESIGN.md")
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra

    @property
    def status(self) -> HTTPStatus:
        return ERROR_STATUS[self.code]

    def as_body(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.extra}


def request_parse_error(exc: Exception) -> PortcullisError:
    """What the client is told when Django cannot read its request body (shared by the API's
    error pages and the upload views, so a form and the API say the same)."""
    from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
    from django.http import UnreadablePostError
    from django.http.multipartparser import MultiPartParserError

    if isinstance(exc, TooManyFilesSent):
        return UploadRejected("too_many_files", "The request carries more files than allowed.")
    if isinstance(exc, RequestDataTooBig):
        return UploadRejected("request_too_large", "The request's form fields are too large.")
    if isinstance(exc, TooManyFieldsSent):
        return UploadRejected("parse_error", "The request carries more form fields than allowed.")
    if isinstance(exc, UnreadablePostError):
        return UploadRejected("bad_request", "The upload was interrupted before it finished.")
    if isinstance(exc, MultiPartParserError):
        return UploadRejected("parse_error", "The multipart form data is malformed.")
    return PortcullisError("bad_request", "The request could not be understood.")


class UploadRejected(PortcullisError):
    """An upload the policy refuses."""


class PolicyConflict(PortcullisError):
    """A change to a policy or rule that conflicts with the stored state."""
