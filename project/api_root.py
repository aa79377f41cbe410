"""The API's entry point: tells an authenticated caller who it is and where to go next."""

from __future__ import annotations

from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response


@api_view(["GET"])
def api_root(request: Request) -> Response:
    return Response({"user": request.user.get_username(), "version": "v1"})
