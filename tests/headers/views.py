"""Test-only views: a page that uses the CSP nonce, views with per-view CSP decorators, a page
that reads request.user, a redirect and a file download."""

from __future__ import annotations

import io

from csp.decorators import csp_exempt, csp_replace, csp_update
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template import engines
from django.utils.html import escape

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


def whoami_page(request: HttpRequest) -> HttpResponse:
    """A personalised page: it reads request.user, as any page showing who is signed in does."""
    name = request.user.get_username() if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"<!doctype html><title>who</title><p>Signed in as {escape(name)}")


def redirect_view(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/t/plain/")


DOWNLOAD_BODY = b"%PDF-1.4\n% a test report\n"


def download_view(request: HttpRequest) -> FileResponse:
    """An uploaded file served as the download view serves it: an attachment."""
    return FileResponse(io.BytesIO(DOWNLOAD_BODY), as_attachment=True, filename="report.pdf")
