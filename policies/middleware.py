"""Apply the header rules to every response (see policies.headers for how rules resolve).

`RuleHeadersMiddleware` sets the non-CSP headers; it sits outside SecurityMiddleware and
XFrameOptionsMiddleware so the rules win over their static values. `RuleCSPMiddleware` is
django-csp's middleware with the policy taken from the rules, so nonces and the per-view
`@csp_update`/`@csp_replace`/`@csp_exempt` decorators keep working. It sits directly inside
RuleHeadersMiddleware, outside every middleware that can answer early (CommonMiddleware's
APPEND_SLASH redirect, the 400 for a disallowed host), so those answers get their CSP too.

Both run on every response, so the work per request is copying prepared values: the rules are
resolved once per (host, path) and rule-set version (policies.headers), settings are read once
when the middleware is built, and the lazy nonce is the one object built for every request.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import LazyObject, empty

from policies.headers import Resolution, csp_exclude_prefixes, rule_sets

_CSP_KEY, _CSP_RO_KEY = HEADER.lower(), HEADER_REPORT_ONLY.lower()
# Directives that take the request's nonce when a template reads request.csp_nonce.
NONCE_DIRECTIVES = ("script-src", "script-src-elem", "style-src", "style-src-elem")
# Set on a response by django-csp's per-view decorators: any of them sends the response down
# django-csp's own path, which knows what each means.
_VIEW_CSP_ATTRS = frozenset(
    {
        "_csp_config",
        "_csp_update",
        "_csp_replace",
        "_csp_exempt",
        "_csp_config_ro",
        "_csp_update_ro",
        "_csp_replace_ro",
        "_csp_exempt_ro",
    }
)
# As django-csp does: reading the nonce after the header is written raises. One shared guard
# serves every request, since evaluating it only ever raises.
_NONCE_TOO_LATE = CheckableLazyObject(CSPMiddleware._csp_nonce_post_response)
_DEBUG_PAGE_STATUSES = (404, 500)  # django-csp leaves Django's debug pages alone


def resolution_for(request: HttpRequest) -> Resolution:
    """The request's header resolution, computed once and shared by both middlewares."""
    resolution = getattr(request, "_header_resolution", None)
    if resolution is None:
        meta = request.META
        host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
        resolution = rule_sets.resolve(host, request.path_info)
        request._header_resolution = resolution
    return resolution


def user_seen_signed_in(request: HttpRequest) -> bool:
    """Was the request's user looked at while answering it, and signed in?

    A view that never read request.user did not personalise its page, so it needs no signed-in
    treatment, and finding out would cost the session and user queries the view saved. Looked
    at means: the lazy user of AuthenticationMiddleware was evaluated, `await request.auser()`
    ran, or a real user object was set (DRF's authentication, `login()`).
    """
    user = getattr(request, "user", None)
    if isinstance(user, LazyObject):  # checks the type only: does not evaluate it
        user = object.__getattribute__(user, "_wrapped")
        if user is empty or user is None:
            user = getattr(request, "_acached_user", None)
    return user is not None and bool(user.is_authenticated)


class RuleHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Read once: every read of the lazy `settings` costs more than the rest of this work.
        self.trusts_proxy_scheme = bool(settings.SECURE_PROXY_SSL_HEADER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Usually worked out already, by RuleCSPMiddleware.
        resolution = getattr(request, "_header_resolution", None) or resolution_for(request)
        # Django's header store is written directly: the values were validated when the rule
        # was saved (visible ASCII, no CR/LF), and this runs on every response.
        store = response.headers._store
        # HSTS goes out over HTTPS only: over plain HTTP it means nothing. request.is_secure()
        # minus its settings read when no proxy header is trusted: then the scheme is the
        # server's, from the hook Django's WSGI and ASGI requests implement.
        if request.is_secure() if self.trusts_proxy_scheme else request._get_scheme() == "https":
            store.update(resolution.over_https)
        else:
            store.update(resolution.always)
        if resolution.signed_in_only and user_seen_signed_in(request):
            store.update(resolution.signed_in_only)  # Cache-Control is for signed-in pages
        for header in resolution.remove:  # already lower-cased
            store.pop(header, None)
        return response


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


def make_nonce(request: HttpRequest) -> str:
    """django-csp's CSPMiddleware._make_nonce: one nonce per request, kept in `_csp_nonce`,
    which is how the middleware knows the page used it."""
    nonce = getattr(request, "_csp_nonce", None)
    if not isinstance(nonce, str):
        nonce = base64.b64encode(os.urandom(16)).decode("ascii")
        request._csp_nonce = nonce
    return nonce


class RequestNonce(CheckableLazyObject):
    """`request.csp_nonce`, as django-csp's (a CheckableLazyObject that makes the nonce when
    first read), but cheaper to build: no functools.partial, `_wrapped` starts out as a class
    attribute, and lazy_nonce() fills the one slot without running Python code."""

    __slots__ = ("_request",)
    _wrapped = empty

    def __init__(self, request: HttpRequest) -> None:
        object.__setattr__(self, "_request", request)

    def _setupfunc(self) -> str:  # SimpleLazyObject's hook (its __copy__ and __repr__ use it)
        return make_nonce(self._request)


_new_nonce = object.__new__
_set_nonce_request = RequestNonce._request.__set__  # the slot's setter: no Python frame


def lazy_nonce(request: HttpRequest) -> RequestNonce:
    """RequestNonce(request), without running any Python code (for the hot path, inline)."""
    nonce = _new_nonce(RequestNonce)
    _set_nonce_request(nonce, request)
    return nonce


class RuleCSPMiddleware(CSPMiddleware):
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        # Settings read once, as every read of the lazy `settings` costs a request's budget.
        self.debug = settings.DEBUG
        # Paths django-csp leaves without a policy; such requests take django-csp's own path.
        self.excluded = csp_exclude_prefixes() + csp_exclude_prefixes(report_only=True)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """MiddlewareMixin's __call__, minus its per-request hasattr() checks."""
        if self.async_mode:
            return super().__call__(request)  # MiddlewareMixin's async path
        # lazy_nonce(request), inline
        request.csp_nonce = nonce = _new_nonce(RequestNonce)
        _set_nonce_request(nonce, request)
        return self.process_response(request, self.get_response(request))

    def process_request(self, request: HttpRequest) -> None:
        request.csp_nonce = lazy_nonce(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Send the rules' prepared policy, unless the page used a nonce or a CSP decorator
        (then django-csp builds it), no rule sets a CSP (then the settings' policy applies), or
        the path is in EXCLUDE_URL_PREFIXES (then django-csp honours that)."""
        # resolution_for(request), inline: RuleHeadersMiddleware reads what this stores.
        meta = request.META
        host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
        request._header_resolution = resolution = rule_sets.resolve(host, request.path_info)
        if (
            resolution.csp_header is None
            or isinstance(getattr(request, "_csp_nonce", None), str)  # the page used its nonce
            or not _VIEW_CSP_ATTRS.isdisjoint(response.__dict__)  # a per-view decorator
            or (self.debug and response.status_code in _DEBUG_PAGE_STATUSES)
            or (self.excluded and request.path_info.startswith(self.excluded))
        ):
            return super().process_response(request, response)
        store = response.headers._store
        if _CSP_KEY not in store:
            store[_CSP_KEY] = (HEADER, resolution.csp_header)
        ro_header = resolution.csp_report_only_header
        if ro_header and _CSP_RO_KEY not in store:
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
