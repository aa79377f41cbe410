"""Read-only reports over the API: the header preview and the CSP violation reports.

The preview answers what the admin's preview and `manage.py headers_preview` answer (one form
validates all three); each endpoint needs the matching `view_` permission.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from policies.forms import PREVIEW_HOST_PATTERN, PREVIEW_PATH_PATTERN, HeaderPreviewForm
from policies.headers import preview
from policies.models import CspReport
from project.api import holding
from project.schema import boolean_param, errors
from uploads.throttles import ReportThrottle


@extend_schema(
    parameters=[
        OpenApiParameter(
            "path",
            {"type": "string", "pattern": PREVIEW_PATH_PATTERN, "maxLength": 2000},
            required=True,
            description="e.g. /admin/",
        ),
        OpenApiParameter(
            "host",
            {"type": "string", "pattern": PREVIEW_HOST_PATTERN, "maxLength": 253},
            description="The request's host, e.g. example.com; left out: any.",
        ),
        OpenApiParameter("https", bool, default=True),
        OpenApiParameter("signed_in", bool, default=False),
    ],
    responses={
        200: inline_serializer(
            name="HeaderPreviewRow",
            many=True,
            fields={
                "header": serializers.CharField(),
                "value": serializers.CharField(),
                "source": serializers.CharField(help_text='The name of the rule, or "settings".'),
                "note": serializers.CharField(),
            },
        ),
        **errors("permission_denied", "validation_error", "throttled"),
    },
)
class HeaderPreview(APIView):
    """GET: every header a response on `path` gets, and which rule set each."""

    permission_classes = [permissions.IsAuthenticated, holding("policies.view_headerrule")]
    throttle_classes = [ReportThrottle]

    def get(self, request: Request) -> Response:
        params = request.query_params
        form = HeaderPreviewForm(
            {
                "preview_path": params.get("path", ""),
                "preview_host": params.get("host", ""),
                "preview_https": boolean_param(params, "https", default=True),
                "preview_signed_in": boolean_param(params, "signed_in", default=False),
            }
        )
        if not form.is_valid():
            fields = {name.removeprefix("preview_"): msgs for name, msgs in form.errors.items()}
            raise ValidationError(fields)
        rows = preview(**form.preview_arguments())
        return Response(
            [
                {"header": r.header, "value": r.value, "source": r.source, "note": r.note}
                for r in rows
            ]
        )


class CspReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = CspReport
        fields = [
            "document_path",
            "directive",
            "blocked_uri",
            "is_overflow",
            "count",
            "first_seen",
            "last_seen",
        ]
        read_only_fields = fields


@extend_schema(
    responses={
        200: CspReportSerializer(many=True),
        **errors("permission_denied", "validation_error", "throttled"),
    },
)
class CspReportList(generics.ListAPIView):
    """GET: CSP violation reports, aggregated by (path, directive, blocked URI), latest first."""

    serializer_class = CspReportSerializer
    permission_classes = [permissions.IsAuthenticated, holding("policies.view_cspreport")]
    throttle_classes = [ReportThrottle]
    queryset = CspReport.objects.order_by("-last_seen", "pk")
