"""Apply the header rules to every response (see policies.headers for how rules resolve).

`RuleHeadersMiddleware` sets the non-CSP headers; it sits outside SecurityMiddleware and
XFrameOptionsMiddleware so the rules win over their static values. `RuleCSPMiddleware` is
django-csp's middleware with the policy taken from the rules, so nonces and the per-view
`@csp_update`/`@csp_replace`/`@csp_exempt` decorators keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from csp.constants import NONCE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

from policies.headers import (
    CACHE_CONTROL,
    CSP,
    HSTS,
    PERMISSIONS_POLICY,
    PERMISSIONS_POLICY_REPORT_ONLY,
    Resolution,
    rule_sets,
)

logger = logging.getLogger("portcullis.headers")

# Directives that take the request's nonce when a template reads request.csp_nonce.
NONCE_DIRECTIVES = ("script-src", "script-src-elem", "style-src", "style-src-elem")


def request_host(request: HttpRequest) -> str:
    """The Host without port, lower-cased; never raises (host validation happens elsewhere)."""
    raw = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    domain, _port = split_domain_port(raw)
    return domain.lower()


def resolution_for(request: HttpRequest) -> Resolution:
    """The request's header resolution, computed once and shared by both middlewares."""
    resolution = getattr(request, "_header_resolution", None)
    if resolution is None:
        resolution = rule_sets.get().resolve(request_host(request), request.path_info)
        request._header_resolution = resolution
    return resolution


def _is_authenticated(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


class RuleHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        apply_headers(resolution_for(request), request, response)
        return response


def apply_headers(resolution: Resolution, request: HttpRequest, response: HttpResponse) -> None:
    for header, decision in resolution.enforced().items():
        if header == CSP:
            continue  # RuleCSPMiddleware's part
        if header == HSTS and not request.is_secure():
            continue  # HSTS over plain HTTP is ignored by browsers and leaks nothing useful
        if header == CACHE_CONTROL and not _is_authenticated(request):
            continue  # the rule's Cache-Control is for authenticated pages
        response[header] = decision.value
    for decision in resolution.decisions:
        if decision.report_only and decision.header == PERMISSIONS_POLICY:
            response[PERMISSIONS_POLICY_REPORT_ONLY] = decision.value
    for header in resolution.remove:
        if header in response:
            del response[header]


def with_nonce(directives: dict[str, list[str]]) -> dict[str, list]:
    """Directives in django-csp's form, with the nonce slot where one can apply."""
    config: dict[str, list] = {name: list(sources) for name, sources in directives.items()}
    for name in NONCE_DIRECTIVES:
        if name in config and "'none'" not in config[name]:
            config[name].append(NONCE)
    return config


class RuleCSPMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponse, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if parts.config is None:  # no per-view @csp override: the rules decide
            resolution = resolution_for(request)
            directives = resolution.csp_report_only if report_only else resolution.csp
            if directives is not None:
                parts.config = with_nonce(directives)
        return parts
