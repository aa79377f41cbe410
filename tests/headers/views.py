"""Test-only views: a page that uses the CSP nonce, and views with per-view CSP decorators."""

from __future__ import annotations

from csp.decorators import csp_exempt, csp_replace, csp_update
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines

_NONCE_PAGE = engines["django"].from_string(
    '<!doctype html><title>n</title><script nonce="{{ request.csp_nonce }}">1</script>'
)


def nonce_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_NONCE_PAGE.render({}, request))


def plain_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>plain</title><p>hello")


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csp_update({"img-src": ["https://images.example.com"]})
def updated_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>u</title>")


@csp_exempt()
def exempt_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>e</title>")


def powered_page(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("<!doctype html><title>p</title>")
    response["X-Powered-By"] = "PHP/5.4"
    return response


_BROWSER_PAGE = engines["django"].from_string(
    "<!doctype html><title>n</title>"
    '<script nonce="{{ request.csp_nonce }}">window.nonced = true;</script>'
    "<script>window.injected = true;</script>"
)


def browser_nonce_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_BROWSER_PAGE.render({}, request))


@csp_replace({"img-src": ["https://only.example"]})
def replaced_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>r</title>")
