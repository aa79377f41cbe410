"""Project-wide views: health probe, home page, and error pages that speak JSON under /api/."""

from __future__ import annotations

from http import HTTPStatus

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE, REASON_NO_REFERER
from django.shortcuts import render
from django.templatetags.static import static
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from project.errors import ERROR_STATUS, request_parse_error


@require_safe
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """200 when the app and its database answer; 503 otherwise (for load balancers)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse(
            {"ok": False, "detail": "The database does not answer."},
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    return JsonResponse({"ok": True})


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_json(code: str, detail: str, status: int | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status or ERROR_STATUS[code])


def _bad_request_error(exception: Exception | None) -> JsonResponse:
    error = request_parse_error(exception or Exception())
    return error_json(error.code, error.detail)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _bad_request_error(exception)
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_json("permission_denied", "You do not have permission to do this.")
    return defaults.permission_denied(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_json("not_found", "Not found.")
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return error_json(
            "server_error",
            "Something went wrong on our side; quote the X-Request-ID header when reporting it.",
        )
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Under /api/ the same code and detail as DRF's session authentication gives a CSRF failure."""
    if _is_api(request):
        return error_json("permission_denied", f"CSRF Failed: {reason or 'CSRF check failed.'}")
    # Our template, with the two reasons a browser setting causes (Django's own view gives a
    # custom template none of its context).
    context = {
        "no_cookie": reason == REASON_NO_CSRF_COOKIE,
        "no_referer": reason == REASON_NO_REFERER,
    }
    return render(request, "403_csrf.html", context, status=HTTPStatus.FORBIDDEN)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): send them to ours
    (resolved per request: the static manifest exists only after collectstatic)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
