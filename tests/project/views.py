"""Small views that exist only to drive the project's error handling and logging in tests."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.datastructures import MultiValueDict
from rest_framework import exceptions
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.errors import PolicyConflict

logger = logging.getLogger("tests.project")

_RAISERS = {
    "drf_validation": lambda: exceptions.ValidationError({"name": ["This field is required."]}),
    "django_validation": lambda: DjangoValidationError({"max_size_bytes": ["Must be positive."]}),
    "django_validation_plain": lambda: DjangoValidationError("The two limits disagree."),
    "http404": lambda: Http404("No such thing"),
    "permission_denied": lambda: PermissionDenied("Nope"),
    "version_conflict": lambda: PolicyConflict(
        "version_conflict", "The policy changed since you read it.", current_version=3
    ),
    "throttled": lambda: exceptions.Throttled(wait=5),
    "runtime": lambda: RuntimeError("boom"),
    "bare_api_exception": lambda: exceptions.APIException(),
    "custom_code": lambda: exceptions.PermissionDenied("Only the owner may.", code="not_owner"),
}


def _count(files: MultiValueDict) -> int:
    return sum(len(uploaded) for _, uploaded in files.lists())


class RaisingView(APIView):
    """GET raises the exception named in the URL; anyone may call it."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request, kind: str) -> Response:
        raise _RAISERS[kind]()


class EchoView(APIView):
    """POST parses the body (JSON or multipart) and says which keys and files it saw."""

    authentication_classes: list = []
    parser_classes = [JSONParser, MultiPartParser]
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        return Response({"keys": sorted(request.data.keys()), "files": _count(request.FILES)})


class SessionEchoView(APIView):
    """The project's default authentication and permissions: token, then session with CSRF."""

    def post(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})


def plain_form(request: HttpRequest) -> HttpResponse:
    """A plain Django view: CSRF-protected, reads request.POST and request.FILES."""
    return JsonResponse({"keys": sorted(request.POST.keys()), "files": _count(request.FILES)})


def plain_forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("Not for you.")


def log_line(request: HttpRequest) -> HttpResponse:
    logger.warning("view says hello; Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b")
    return HttpResponse("logged")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("failed with password=hunter2 and sessionid=abc123def")


def csp_canary(request: HttpRequest) -> HttpResponse:
    """A page that breaks the strict CSP on purpose (an inline script without its nonce), so the
    browser tests can prove their violation listener hears a violation."""
    return HttpResponse(
        "<!doctype html><title>canary</title><p>canary</p><script>document.title = 'sang'</script>"
    )
