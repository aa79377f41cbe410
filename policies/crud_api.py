"""Upload policies and header rules over the API: list, read, create, update, delete.

Every write goes through policies.services, so it is audited like an admin's: POST, PUT and PATCH
carry `reason` and `rollback_note` in the body (PUT and PATCH also the `version` they were based
on); DELETE carries them as query parameters and the version as `If-Match: "<version>"`. A stale
version answers 409 `version_conflict` with `current_version`. PUT and PATCH both change the fields
sent (a body read with GET can be sent back as it is); unknown fields are refused.

Permissions are the models' (`view_`, `add_`, `change_`, `delete_`), so a "policy editors" group
can be granted without superuser. A caller without `view_uploadpolicy` still reads the limits of
the policies it may upload under (what an uploading client needs), and nothing else.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from policies import services
from policies.api import UploadPolicyLimitsSerializer
from policies.models import HeaderRule, UploadPolicy
from policies.selectors import policies_usable_by
from project.api import JsonTypes
from project.schema import errors
from uploads.throttles import PolicyWriteThrottle

WHY_FIELDS = ("reason", "rollback_note")
READ_ONLY = ("id", "version", "created_at", "updated_at")


class ModelPermissions(permissions.DjangoModelPermissions):
    """The model's permissions, `view_` included for reads."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class PolicyReaders(ModelPermissions):
    """Anyone signed in may read (and is shown only the limits it may use); writes as above."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


def _serializer_for(model):
    class Serializer(JsonTypes, serializers.ModelSerializer):
        class Meta:
            fields = "__all__"
            read_only_fields = READ_ONLY

    Serializer.Meta.model = model
    Serializer.__name__ = f"{model.__name__}Serializer"
    return Serializer


UploadPolicySerializer = _serializer_for(UploadPolicy)
HeaderRuleSerializer = _serializer_for(HeaderRule)


class WriteMeta(JsonTypes, serializers.Serializer):
    reason = serializers.CharField(help_text="Why you make this change (in the audit log).")
    rollback_note = serializers.CharField(help_text="How to undo it if it goes wrong.")


class VersionedWriteMeta(WriteMeta):
    version = serializers.IntegerField(help_text="The version your change is based on.")


class AuditedObjects(GenericAPIView):
    """Shared by both kinds: the services to call, the body's meta fields, the version."""

    throttle_classes = [PolicyWriteThrottle]

    service_create: Any
    service_update: Any
    service_delete: Any
    object_arg: str  # the services' keyword for the object ("policy", "rule")

    def _split(self, request: Request, meta_class) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Send a JSON object."]})
        meta = meta_class(data=request.data)
        meta.is_valid(raise_exception=True)
        allowed = {*self.get_serializer().fields, *meta.fields}
        if unknown := sorted(set(request.data) - allowed):
            raise ValidationError({name: ["No such field."] for name in unknown})
        body = {k: v for k, v in request.data.items() if k not in meta.fields}
        return body, meta.validated_data

    def _actor(self) -> services.Actor:
        return services.Actor.from_request(self.request)


# What a request with a JSON body can answer, and what a DELETE (no body) can.
WRITE_ERRORS = (
    "permission_denied",
    "validation_error",
    "parse_error",
    "unsupported_media_type",
    "throttled",
)
DELETE_ERRORS = ("permission_denied", "validation_error", "throttled")


class ObjectList(AuditedObjects):
    pagination_class = None

    def get(self, request: Request) -> Response:
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    def post(self, request: Request) -> Response:
        body, why = self._split(request, WriteMeta)
        fields = self.get_serializer(data=body)
        fields.is_valid(raise_exception=True)
        obj = self.service_create(data=dict(fields.validated_data), actor=self._actor(), **why)
        return Response(self.get_serializer(obj).data, status=HTTPStatus.CREATED)


# The version a deletion is based on, as an entity tag ("3") or bare (3); weak tags do not match.
IF_MATCH_PATTERN = r'^(?:"([0-9]{1,18})"|([0-9]{1,18}))$'
DELETE_PARAMETERS = [
    OpenApiParameter("reason", str, required=True),
    OpenApiParameter("rollback_note", str, required=True),
    OpenApiParameter(
        "If-Match",
        str,
        OpenApiParameter.HEADER,
        required=True,
        pattern=IF_MATCH_PATTERN,
        description='The version the deletion is based on, e.g. "3".',
    ),
]


class ObjectDetail(AuditedObjects):
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def put(self, request: Request, pk: int) -> Response:
        return self._change(request, partial=False)

    def patch(self, request: Request, pk: int) -> Response:
        return self._change(request, partial=True)

    def _change(self, request: Request, *, partial: bool) -> Response:
        obj = self.get_object()
        body, meta = self._split(request, VersionedWriteMeta)
        fields = self.get_serializer(obj, data=body, partial=True)
        fields.is_valid(raise_exception=True)
        changed = self.service_update(
            **{self.object_arg: obj},
            changes=dict(fields.validated_data),
            actor=self._actor(),
            **meta,
        )
        return Response(self.get_serializer(changed).data)

    def delete(self, request: Request, pk: int) -> Response:
        obj = self.get_object()
        why = WriteMeta(data=request.query_params)
        why.is_valid(raise_exception=True)
        match = re.fullmatch(IF_MATCH_PATTERN, request.headers.get("If-Match", ""))
        if not match:
            raise ValidationError(
                {"If-Match": ['Send the version the deletion is based on: If-Match: "3".']}
            )
        self.service_delete(
            **{self.object_arg: obj},
            version=int(match[1] or match[2]),
            actor=self._actor(),
            **why.validated_data,
        )
        return Response(status=HTTPStatus.NO_CONTENT)


def _request_bodies(serializer) -> tuple[type, type]:
    """The bodies the API description shows (the views split them with WriteMeta and
    VersionedWriteMeta): POST the object's fields and why; PUT and PATCH any of its fields (only
    those sent change), why, and the version."""
    name = serializer.__name__.removesuffix("Serializer")
    writable = [n for n, field in serializer().fields.items() if not field.read_only]

    class Create(serializer, WriteMeta):
        pass

    class Change(serializer, VersionedWriteMeta):
        class Meta(serializer.Meta):
            extra_kwargs = {field: {"required": False} for field in writable}

        # drf-spectacular drops every `required` of a serializer it marks partial for PATCH; the
        # why and the version are required there too.
        partial = property(lambda self: False, lambda self, value: None)

    Create.__name__, Change.__name__ = f"{name}Create", f"{name}Change"
    return Create, Change


def _detail_schema(serializer, read=None, delete_conflicts=()):
    _create, change = _request_bodies(serializer)
    return extend_schema_view(
        get=extend_schema(
            responses={200: read or serializer, **errors("not_found", "permission_denied")}
        ),
        put=extend_schema(
            request=change,
            responses={200: serializer, **errors("not_found", "version_conflict", *WRITE_ERRORS)},
        ),
        patch=extend_schema(
            request=change,
            responses={200: serializer, **errors("not_found", "version_conflict", *WRITE_ERRORS)},
        ),
        delete=extend_schema(
            parameters=DELETE_PARAMETERS,
            responses={
                204: None,
                **errors("not_found", "version_conflict", *delete_conflicts, *DELETE_ERRORS),
            },
        ),
    )


def _list_schema(serializer, read=None):
    create, _change = _request_bodies(serializer)
    return extend_schema_view(
        get=extend_schema(
            responses={
                200: read(many=True) if read else serializer(many=True),
                **errors("permission_denied"),
            }
        ),
        post=extend_schema(request=create, responses={201: serializer, **errors(*WRITE_ERRORS)}),
    )


class PolicyVisibility:
    """Holders of view_uploadpolicy see policies whole; others the limits of usable ones."""

    def _sees_all(self) -> bool:
        return self.request.user.has_perm("policies.view_uploadpolicy")

    def get_queryset(self):
        if self._sees_all() or self.request.method not in permissions.SAFE_METHODS:
            return UploadPolicy.objects.order_by("slug")
        usable = [policy.pk for policy in policies_usable_by(self.request.user)]
        return UploadPolicy.objects.filter(pk__in=usable).order_by("slug")

    def get_serializer_class(self):
        if self._sees_all() or self.request.method not in permissions.SAFE_METHODS:
            return UploadPolicySerializer
        return UploadPolicyLimitsSerializer


POLICY_SERVICES = {
    "service_create": staticmethod(services.policy_create),
    "service_update": staticmethod(services.policy_update),
    "service_delete": staticmethod(services.policy_delete),
    "object_arg": "policy",
    "permission_classes": [permissions.IsAuthenticated, PolicyReaders],
}
RULE_SERVICES = {
    "service_create": staticmethod(services.rule_create),
    "service_update": staticmethod(services.rule_update),
    "service_delete": staticmethod(services.rule_delete),
    "object_arg": "rule",
    "permission_classes": [permissions.IsAuthenticated, ModelPermissions],
    "serializer_class": HeaderRuleSerializer,
    "queryset": HeaderRule.objects.order_by("-priority", "name"),
}


def _policy_as_read(many: bool = False) -> PolymorphicProxySerializer:
    """What a policy read answers: the whole policy to holders of view_uploadpolicy, its limits
    to everyone else."""
    return PolymorphicProxySerializer(
        component_name="UploadPolicyOrLimits",
        serializers=[UploadPolicySerializer, UploadPolicyLimitsSerializer],
        resource_type_field_name=None,
        many=many,
    )


UploadPolicyList = _list_schema(UploadPolicySerializer, _policy_as_read)(
    type("UploadPolicyList", (PolicyVisibility, ObjectList), POLICY_SERVICES)
)
UploadPolicyDetail = _detail_schema(
    UploadPolicySerializer, _policy_as_read(), delete_conflicts=("policy_in_use",)
)(type("UploadPolicyDetail", (PolicyVisibility, ObjectDetail), POLICY_SERVICES))
HeaderRuleList = _list_schema(HeaderRuleSerializer)(
    type("HeaderRuleList", (ObjectList,), RULE_SERVICES)
)
HeaderRuleDetail = _detail_schema(HeaderRuleSerializer)(
    type("HeaderRuleDetail", (ObjectDetail,), RULE_SERVICES)
)
