"""Apply the header rules to every response (see policies.headers for how rules resolve).

`RuleHeadersMiddleware` sets the non-CSP headers; it sits outside SecurityMiddleware and
XFrameOptionsMiddleware so the rules win over their static values. `RuleCSPMiddleware` is
django-csp's middleware with the policy taken from the rules, so nonces and the per-view
`@csp_update`/`@csp_replace`/`@csp_exempt` decorators keep working.

Both run on every response, so the work per request is copying prepared values: the rules are
resolved once per (host, path) and rule-set version (policies.headers).
"""

from __future__ import annotations

from collections.abc import Callable

from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from policies.headers import Resolution, rule_sets

_CSP_KEY, _CSP_RO_KEY = HEADER.lower(), HEADER_REPORT_ONLY.lower()
# Directives that take the request's nonce when a template reads request.csp_nonce.
NONCE_DIRECTIVES = ("script-src", "script-src-elem", "style-src", "style-src-elem")
# Set by django-csp's per-view decorators; any of them sends the request down django-csp's path.
_VIEW_CSP_ATTRS = frozenset(
    {
        "_csp_config",
        "_csp_update",
        "_csp_replace",
        "_csp_config_ro",
        "_csp_update_ro",
        "_csp_replace_ro",
    }
)
# As django-csp does: reading the nonce after the header is written raises. One shared guard
# serves every request, since evaluating it only ever raises.
_NONCE_TOO_LATE = CheckableLazyObject(CSPMiddleware._csp_nonce_post_response)


def resolution_for(request: HttpRequest) -> Resolution:
    """The request's header resolution, computed once and shared by both middlewares."""
    resolution = getattr(request, "_header_resolution", None)
    if resolution is None:
        host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
        resolution = rule_sets.get().resolve(host, request.path_info)
        request._header_resolution = resolution
    return resolution


class RuleHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Read once: every read of the lazy `settings` costs more than the rest of this work.
        self.session_cookie = settings.SESSION_COOKIE_NAME
        self.trusts_proxy_scheme = bool(settings.SECURE_PROXY_SSL_HEADER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        resolution = resolution_for(request)
        # Django's header store is written directly: the values were validated when the rule
        # was saved (visible ASCII, no CR/LF), and this runs on every response.
        store = response.headers._store
        # HSTS goes out over HTTPS only: over plain HTTP it means nothing.
        store.update(resolution.over_https if self.is_secure(request) else resolution.always)
        if resolution.signed_in_only and self.is_authenticated(request):
            store.update(resolution.signed_in_only)  # Cache-Control is for signed-in pages
        for header in resolution.remove:  # already lower-cased
            store.pop(header, None)
        return response

    def is_secure(self, request: HttpRequest) -> bool:
        """request.is_secure(), minus its settings read when no proxy header is trusted: then
        the scheme is the server's, from the hook Django's WSGI and ASGI requests implement."""
        return request.is_secure() if self.trusts_proxy_scheme else request._get_scheme() == "https"

    def is_authenticated(self, request: HttpRequest) -> bool:
        """Signed in? Without a session cookie a still-lazy user is anonymous: skip building it.

        object.__getattribute__ reads the lazy user's state without LazyObject's slow hook.
        """
        user = getattr(request, "user", None)
        if user is None:
            return False
        anonymous_if_lazy = self.session_cookie not in request.COOKIES
        if anonymous_if_lazy and type(user) is SimpleLazyObject:
            return object.__getattribute__(user, "_wrapped") is not empty and user.is_authenticated
        return user.is_authenticated


def with_nonce(directives: dict[str, list[str]]) -> dict[str, list]:
    """Directives in django-csp's form, with the nonce slot where one can apply.

    A policy with only default-src gets script-src and style-src spelled out from it (the same
    policy, as browsers fall back to default-src), so a page that uses a nonce still works.
    """
    config: dict[str, list] = {name: list(sources) for name, sources in directives.items()}
    fallback = config.get("default-src", [])
    if fallback and "'none'" not in fallback:  # an explicit 'none' stays: no scripts at all
        for name in ("script-src", "style-src"):
            config.setdefault(name, list(fallback))
    for name in NONCE_DIRECTIVES:
        if name in config and "'none'" not in config[name]:
            config[name].append(NONCE)
    return config


class RuleCSPMiddleware(CSPMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Send the rules' prepared policy, unless the page used a nonce or a CSP decorator
        (then django-csp builds it) or no rule sets a CSP (then the settings' policy applies)."""
        resolution = resolution_for(request)
        debug_page = settings.DEBUG and response.status_code in (404, 500)  # as django-csp
        nonce_used = isinstance(getattr(request, "_csp_nonce", None), str)
        customised = not _VIEW_CSP_ATTRS.isdisjoint(vars(response))
        if debug_page or nonce_used or customised or resolution.csp_header is None:
            return super().process_response(request, response)
        store = response.headers._store
        if _CSP_KEY not in store and not getattr(response, "_csp_exempt", False):
            store[_CSP_KEY] = (HEADER, resolution.csp_header)
        ro_header = resolution.csp_report_only_header
        if ro_header and _CSP_RO_KEY not in store and not getattr(response, "_csp_exempt_ro", 0):
            store[_CSP_RO_KEY] = (HEADER_REPORT_ONLY, ro_header)
        request.csp_nonce = _NONCE_TOO_LATE
        return response

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
