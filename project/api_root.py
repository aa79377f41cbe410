"""The API's entry point: tells an authenticated caller who it is and where to go next."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from project.schema import errors


@extend_schema(
    responses={
        200: inline_serializer(
            name="ApiRoot",
            fields={"user": serializers.CharField(), "version": serializers.CharField()},
        ),
        **errors(),
    }
)
@api_view(["GET"])
def api_root(request: Request) -> Response:
    return Response({"user": request.user.get_username(), "version": "v1"})
