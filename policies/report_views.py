"""The endpoint browsers send CSP violation reports to (`report-uri` and the Reporting API).

Public and without CSRF (browsers send reports with no cookie or token), so it is throttled per
client address in the shared cache and never reads more than MAX_BODY_BYTES of a body.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Protocol

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from policies import reports
from policies.headers import allowed_hosts
from project.errors import PortcullisError
from project.net import client_ip

MAX_BODY_BYTES = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def declared_length(request: HttpRequest) -> int | None:
    """The Content-Length the client claims, or None when absent or not a number."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def read_capped(stream: Readable, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most `limit` bytes of the body; request_too_large if there is more, whatever was claimed.

    Reads `limit + 1` bytes at most, so a missing or lying Content-Length cannot make it read more.
    """
    chunks, remaining = [], limit + 1
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    if len(body) > limit:
        raise reports.ReportRefused("request_too_large", _too_large_detail(limit))
    return body


def _too_large_detail(limit: int) -> str:
    return f"A report body may be at most {limit // 1024} KiB."


def reporting_hosts(request: HttpRequest) -> list[str]:
    """The hosts whose pages may report here: ALLOWED_HOSTS, and the host this request came to."""
    hosts = list(allowed_hosts())
    try:
        own_host, _port = split_domain_port(request.get_host())
    except DisallowedHost:  # not ours: CommonMiddleware refuses it before this view runs
        own_host = ""
    if own_host:
        hosts.append(own_host)
    return hosts


def _refusal(error: PortcullisError, **headers: str) -> JsonResponse:
    return JsonResponse(error.as_body(), status=error.status, headers=headers)


@csrf_exempt
@never_cache
def csp_report(request: HttpRequest) -> HttpResponse:
    """POST a report: 204 once counted; JSON `{"code", "detail"}` for any refusal."""
    if request.method != "POST":
        error = PortcullisError("method_not_allowed", f'Method "{request.method}" not allowed.')
        return _refusal(error, Allow="POST")
    wait = reports.throttle_wait(client_ip(request), limit=settings.CSP_REPORTS_PER_MINUTE)
    if wait is not None:
        error = PortcullisError(
            "throttled", f"Too many reports; try again in {wait} seconds.", retry_after=wait
        )
        return _refusal(error, **{"Retry-After": str(wait)})
    try:
        content_type = reports.require_content_type(request.content_type)
        length = declared_length(request)
        if length is not None and length > MAX_BODY_BYTES:
            raise reports.ReportRefused("request_too_large", _too_large_detail(MAX_BODY_BYTES))
        violations = reports.parse_reports(
            read_capped(request), content_type, hosts=reporting_hosts(request)
        )
        reports.csp_reports_record(violations=violations)
    except PortcullisError as error:
        return _refusal(error)
    return HttpResponse(status=HTTPStatus.NO_CONTENT)
