"""The uploads API: thin DRF views over the pipeline, the selectors and the services."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.api import holding
from project.schema import errors, within_dates
from uploads import services
from uploads.idempotency import KEY_HEADER_PATTERN
from uploads.models import Upload, UploadEvent
from uploads.pipeline import UploadAttempt, uploader_of
from uploads.selectors import may_delete, uploads_visible_to
from uploads.serving import download_response
from uploads.throttles import ReportThrottle, UploadAddressThrottle, UploadUserThrottle

DEFAULT_POLICY = "default"


class UploadSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(source="original_name")
    size = serializers.IntegerField(source="size_bytes")
    policy = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Upload
        fields = ["id", "filename", "size", "sha256", "content_type", "policy", "created_at"]
        read_only_fields = fields


UPLOAD_ERRORS = (
    "file_required",
    "empty_file",
    "too_many_files",
    "file_too_large",
    "request_too_large",
    "filename_invalid",
    "extension_not_allowed",
    "type_not_allowed",
    "type_mismatch",
    "image_invalid",
    "image_too_large",
    "active_content",
    "archive_rejected",
    "malware_detected",
    "scanner_unavailable",
    "quota_exceeded",
    "throttled",
    "policy_not_found",
    "policy_disabled",
    "permission_denied",
    "idempotency_conflict",
    "idempotency_in_progress",
    "parse_error",
    "bad_request",
)


@extend_schema_view(
    get=extend_schema(responses={200: UploadSerializer(many=True), **errors("validation_error")}),
    post=extend_schema(
        parameters=[
            OpenApiParameter(
                "policy", str, description="The upload policy's slug.", default=DEFAULT_POLICY
            ),
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                pattern=KEY_HEADER_PATTERN,
                description="Makes retries safe: the same key and file replay the first answer "
                "(IETF httpapi idempotency-key draft); 1 to 255 printable ASCII characters.",
            ),
        ],
        request={
            "multipart/form-data": inline_serializer(
                name="UploadRequest", fields={"file": serializers.FileField()}
            )
        },
        responses={201: UploadSerializer, **errors(*UPLOAD_ERRORS)},
    ),
)
class UploadListCreate(generics.ListAPIView):
    """GET: the caller's uploads. POST ?policy=<slug>: upload the multipart field `file`.

    The policy comes from the URL so its limits apply while the body streams: the attempt
    installs them in initialize_request(), before authentication's CSRF check reads the body.
    """

    serializer_class = UploadSerializer
    # Session authentication's CSRF check reads the form through DRF; the files themselves are
    # read by Django's parser with the policy's limits (uploads.receive).
    parser_classes = [MultiPartParser]
    attempt: UploadAttempt | None = None

    def get_queryset(self):
        return uploads_visible_to(self.request.user)

    def initialize_request(self, request, *args, **kwargs) -> Request:
        # swagger_fake_view: drf-spectacular describing the view, not a client uploading.
        if request.method == "POST" and not getattr(self, "swagger_fake_view", False):
            self.attempt = UploadAttempt(request, request.GET.get("policy", DEFAULT_POLICY))
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request: Request, *args, **kwargs) -> None:
        if self.attempt is None:
            return super().initial(request, *args, **kwargs)
        with self.attempt.refusing():  # session authentication's CSRF check reads the body
            try:
                super().initial(request, *args, **kwargs)
            except PermissionDenied:  # a CSRF failure on a body the handler had cut short
                if rejection := self.attempt.handler.rejection:
                    raise rejection from None
                raise

    def finalize_response(self, request, response, *args, **kwargs):
        if self.attempt is not None:  # also when authentication or a permission refused
            self.attempt.clean_up()
        return super().finalize_response(request, response, *args, **kwargs)

    def get_throttles(self):
        if self.request.method == "POST":
            return [UploadUserThrottle(), UploadAddressThrottle()]
        return super().get_throttles()

    def post(self, request: Request) -> Response:
        result = self.attempt.run(answer=_created_body)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return Response(result.body, status=result.status, headers=headers)


def _created_body(uploads: list[Upload]) -> Any:
    """One upload's object; a list for several files in one request."""
    data = UploadSerializer(uploads, many=True).data
    return data[0] if len(data) == 1 else data


@extend_schema_view(
    get=extend_schema(responses={200: UploadSerializer, **errors("not_found")}),
    delete=extend_schema(responses={204: None, **errors("not_found", "permission_denied")}),
)
class UploadDetail(generics.RetrieveDestroyAPIView):
    """GET: one upload's details. DELETE: remove it (its owner, or holders of delete_upload)."""

    serializer_class = UploadSerializer

    def get_queryset(self):
        return uploads_visible_to(self.request.user)

    def perform_destroy(self, instance: Upload) -> None:
        if not may_delete(self.request.user, instance):
            raise PermissionDenied("You may not delete this upload.")
        services.upload_delete(upload=instance, uploader=uploader_of(self.request))


class AnyAccept(BaseContentNegotiation):
    """A download is its file whatever the Accept header asks for (no 406)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(
    responses={
        (200, "*/*"): OpenApiResponse(
            OpenApiTypes.BINARY,
            description="The stored file, as an attachment, with the type sniffed when it was "
            "accepted (e.g. image/png, or application/octet-stream).",
        ),
        **errors("not_found"),
    }
)
class UploadDownload(generics.GenericAPIView):
    """GET: the stored file, streamed as an attachment."""

    content_negotiation_class = AnyAccept

    def get_queryset(self):
        return uploads_visible_to(self.request.user)

    def get(self, request: Request, pk: str):
        return download_response(get_object_or_404(self.get_queryset(), pk=pk))


class UploadEventSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    policy = serializers.CharField(source="policy_slug")

    class Meta:
        model = UploadEvent
        fields = [
            "id",
            "created_at",
            "policy",
            "code",
            "would_refuse_code",
            "user",
            "filename",
            "size_bytes",
            "content_type",
            "sha256",
            "scan",
            "scan_signature",
            "client_ip",
            "request_id",
        ]
        read_only_fields = fields


EVENT_FILTERS = [
    OpenApiParameter("policy", str, description="The policy's slug."),
    OpenApiParameter("code", str, description="accepted, or a refusal's code."),
    OpenApiParameter("user", str, description="The uploader's username."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Events at or after."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events before."),
]


def _events(request: Request, *, require_since: bool = False):
    """The upload events the query parameters ask for."""
    params = request.query_params
    events = UploadEvent.objects.all()
    for name, field in (("policy", "policy_slug"), ("code", "code"), ("user", "user__username")):
        if value := params.get(name):
            events = events.filter(**{field: value})
    if require_since and not params.get("since"):
        raise ValidationError({"since": ["Say since when, e.g. 2026-12-01T00:00:00Z."]})
    return within_dates(events, params)


@extend_schema(
    parameters=EVENT_FILTERS,
    responses={
        200: UploadEventSerializer(many=True),
        **errors("permission_denied", "validation_error", "throttled"),
    },
)
class UploadEventList(generics.ListAPIView):
    """GET: upload decisions, accepted and refused, newest first."""

    serializer_class = UploadEventSerializer
    permission_classes = [permissions.IsAuthenticated, holding("uploads.view_uploadevent")]
    throttle_classes = [ReportThrottle]

    def get_queryset(self):
        return _events(self.request).select_related("user").order_by("-created_at", "-id")


@extend_schema(
    parameters=[p for p in EVENT_FILTERS if p.name != "since"]
    + [OpenApiParameter("since", OpenApiTypes.DATETIME, required=True)],
    responses={
        200: inline_serializer(
            name="UploadEventSummary",
            fields={
                "total": serializers.IntegerField(),
                "by_code": serializers.DictField(child=serializers.IntegerField()),
                "by_policy": serializers.DictField(child=serializers.IntegerField()),
            },
        ),
        **errors("permission_denied", "validation_error", "throttled"),
    },
)
class UploadEventSummary(APIView):
    """GET ?since=...: how many decisions, per code and per policy."""

    permission_classes = [permissions.IsAuthenticated, holding("uploads.view_uploadevent")]
    throttle_classes = [ReportThrottle]

    def get(self, request: Request) -> Response:
        events = _events(request, require_since=True)
        by_code = dict(events.values_list("code").annotate(n=Count("id")).order_by("code"))
        by_policy = dict(
            events.values_list("policy_slug").annotate(n=Count("id")).order_by("policy_slug")
        )
        return Response(
            {"total": sum(by_code.values()), "by_code": by_code, "by_policy": by_policy}
        )
