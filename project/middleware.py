"""Request-scoped plumbing that every other part of the project relies on."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse

from project.views import health

REQUEST_ID_HEADER = "X-Request-ID"
HEALTH_PATH = "/health"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")


def accept_or_make_request_id(incoming: str | None) -> str:
    """Keep a caller's id if it is short and plain (so it is safe in logs), else make one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Tags the request, its log lines, its audit entries and its response with one id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_or_make_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class HealthCheckMiddleware:
    """Answers GET/HEAD /health before host validation and the HTTPS redirect.

    Load balancers probe by IP address over plain HTTP; the Host they send is not in ALLOWED_HOSTS,
    and the answer must not be a 400 or a redirect. The answer itself is `project.views.health`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)


class RefuseNulMiddleware:
    """A NUL in the path or the query string is a 400 `bad_request` at once: no page or API
    parameter means one, and PostgreSQL cannot even compare text with it (a 500 otherwise)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.GET
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in query.getlist(key)) for key in query
        ):
            raise BadRequest("The address holds a NUL character.")
        return self.get_response(request)
