"""The audit log over the API: list and read entries, roll one back, verify the chain.

Reading needs `policies.view_auditentry`; rolling back needs what the admin's rollback needs
(policies.selectors.may_roll_back). Entries are addressed by their `seq`.
"""

from __future__ import annotations

from http import HTTPStatus

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from policies import audit, services
from policies.models import AuditAction, AuditEntry
from policies.selectors import may_roll_back
from project.api import JsonTypes
from project.schema import choice_param, errors, within_dates
from uploads.throttles import PolicyWriteThrottle, ReportThrottle


class MayViewAuditLog(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.has_perm("policies.view_auditentry")


SUMMARY_FIELDS = [
    "seq",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "diff",
    "reason",
    "rollback_note",
    "rolls_back_seq",
    "request_id",
    "entry_hash",
]


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = SUMMARY_FIELDS
        read_only_fields = fields


class AuditEntryDetailSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [*SUMMARY_FIELDS, "before", "after", "client_ip", "key_id", "prev_hash"]
        read_only_fields = fields


CHOICES = {"object_type": sorted(services.KINDS), "action": sorted(AuditAction.values)}
FILTERS = [
    OpenApiParameter("object_type", str, enum=CHOICES["object_type"]),
    OpenApiParameter("object_id", str),
    OpenApiParameter("actor", str, description='As recorded, e.g. "user:alice" or "system".'),
    OpenApiParameter("action", str, enum=CHOICES["action"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Entries at or after."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Entries before."),
]


@extend_schema(
    parameters=FILTERS,
    responses={
        200: AuditEntrySerializer(many=True),
        **errors("permission_denied", "validation_error", "throttled"),
    },
)
class AuditEntryList(generics.ListAPIView):
    """GET: the audit log, newest first, filtered by the query parameters."""

    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated, MayViewAuditLog]
    throttle_classes = [ReportThrottle]

    def get_queryset(self):
        entries = AuditEntry.objects.order_by("-seq")
        params = self.request.query_params
        for field, choices in CHOICES.items():
            if value := choice_param(params, field, choices):
                entries = entries.filter(**{field: value})
        for field in ("object_id", "actor"):
            if value := params.get(field):
                entries = entries.filter(**{field: value})
        return within_dates(entries, params)


@extend_schema(
    responses={
        200: AuditEntryDetailSerializer,
        **errors("permission_denied", "not_found", "throttled"),
    }
)
class AuditEntryDetail(generics.RetrieveAPIView):
    """GET: one entry, with the object's state before and after it and the field diff."""

    serializer_class = AuditEntryDetailSerializer
    permission_classes = [permissions.IsAuthenticated, MayViewAuditLog]
    throttle_classes = [ReportThrottle]
    queryset = AuditEntry.objects.all()
    lookup_field = "seq"


class RollbackSerializer(JsonTypes, serializers.Serializer):
    reason = serializers.CharField(help_text="Why you roll the change back.")
    rollback_note = serializers.CharField(
        required=False, allow_blank=True, help_text="How to undo the rollback (default: said)."
    )


@extend_schema(
    request=RollbackSerializer,
    responses={
        201: AuditEntryDetailSerializer,
        **errors(
            "permission_denied",
            "not_found",
            "validation_error",
            "rollback_conflict",
            "parse_error",
            "unsupported_media_type",
            "throttled",
        ),
    },
)
class AuditEntryRollback(APIView):
    """POST: restore the object to how it was before this entry, as a new `rollback` entry.
    Only an object's latest change can be rolled back (else 409 `rollback_conflict`)."""

    permission_classes = [permissions.IsAuthenticated, MayViewAuditLog]
    throttle_classes = [PolicyWriteThrottle]

    def post(self, request: Request, seq: int) -> Response:
        entry = get_object_or_404(AuditEntry, seq=seq)
        if not may_roll_back(request.user, entry):
            raise PermissionDenied("You may not roll back changes to this object.")
        why = RollbackSerializer(data=request.data)
        why.is_valid(raise_exception=True)
        new_entry = services.change_rollback(
            entry=entry,
            actor=services.Actor.from_request(request),
            reason=why.validated_data["reason"],
            rollback_note=why.validated_data.get("rollback_note", ""),
        )
        return Response(AuditEntryDetailSerializer(new_entry).data, status=HTTPStatus.CREATED)


@extend_schema(
    responses={
        200: inline_serializer(
            name="AuditVerification",
            fields={
                "ok": serializers.BooleanField(),
                "count": serializers.IntegerField(help_text="Entries checked."),
                "head_hash": serializers.CharField(help_text="Hash of the last good entry."),
                "problem": serializers.CharField(help_text="The first break, if any."),
            },
        ),
        **errors("permission_denied", "throttled"),
    }
)
class AuditVerify(APIView):
    """GET: walk the hash chain (as `manage.py audit_verify` does) and say where it breaks."""

    permission_classes = [permissions.IsAuthenticated, MayViewAuditLog]
    throttle_classes = [ReportThrottle]

    def get(self, request: Request) -> Response:
        result = audit.verify()
        return Response(
            {
                "ok": result.ok,
                "count": result.count,
                "head_hash": result.head_hash,
                "problem": result.problem,
            }
        )
