"""Export and import of policies and rules over the API (policies.exchange does the work, as
for `manage.py policies_export` and `policies_import`)."""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from policies.exchange import ImportRefused, apply, export_document, parse_document, plan
from policies.services import Actor
from project.api import JsonTypes, holding
from project.schema import errors
from uploads.throttles import PolicyWriteThrottle, ReportThrottle


@extend_schema(
    responses={
        200: inline_serializer(
            name="PoliciesExport",
            fields={
                "format": serializers.IntegerField(),
                "upload_policies": serializers.DictField(child=serializers.DictField()),
                "header_rules": serializers.DictField(child=serializers.DictField()),
            },
        ),
        **errors("permission_denied", "throttled"),
    }
)
class PoliciesExport(APIView):
    """GET: every upload policy and header rule, as `manage.py policies_export` writes them."""

    permission_classes = [
        permissions.IsAuthenticated,
        holding("policies.view_uploadpolicy"),
        holding("policies.view_headerrule"),
    ]
    throttle_classes = [ReportThrottle]

    def get(self, request: Request) -> Response:
        return Response(export_document())


EVERY_WRITE = [
    holding(f"policies.{action}_{model}")
    for model in ("uploadpolicy", "headerrule")
    for action in ("add", "change", "delete")
]


class ImportRequest(JsonTypes, serializers.Serializer):
    document = serializers.JSONField(help_text="What GET policies/export/ answers.")
    reason = serializers.CharField()
    rollback_note = serializers.CharField()
    dry_run = serializers.BooleanField(default=False)


@extend_schema(
    request=ImportRequest,
    responses={
        200: inline_serializer(
            name="PoliciesImportResult",
            fields={
                "changes": serializers.ListField(child=serializers.CharField()),
                "applied": serializers.BooleanField(),
            },
        ),
        **errors(
            "permission_denied",
            "validation_error",
            "parse_error",
            "unsupported_media_type",
            "throttled",
        ),
    },
)
class PoliciesImport(APIView):
    """POST: make the policies and rules what the document says (each change one `import` audit
    entry, all or nothing); with `dry_run`, make and check them, then undo them all."""

    permission_classes = [permissions.IsAuthenticated, *EVERY_WRITE]
    throttle_classes = [PolicyWriteThrottle]

    def post(self, request: Request) -> Response:
        body = ImportRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            changes = plan(parse_document(json.dumps(body.validated_data["document"])))
            if changes:
                apply(
                    changes,
                    actor=Actor.from_request(request),
                    reason=body.validated_data["reason"],
                    rollback_note=body.validated_data["rollback_note"],
                    dry_run=body.validated_data["dry_run"],
                )
        except ImportRefused as refused:
            raise ValidationError({"document": [f"{refused}; nothing was changed."]}) from None
        applied = bool(changes) and not body.validated_data["dry_run"]
        return Response({"changes": [c.describe() for c in changes], "applied": applied})
