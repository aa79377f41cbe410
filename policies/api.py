"""The policies API. For now: what an uploading client needs to know about its policies."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from policies.models import UploadPolicy
from policies.selectors import policies_usable_by
from project.schema import errors


class UploadPolicyLimitsSerializer(serializers.ModelSerializer):
    class Meta:
        model = UploadPolicy
        fields = [
            "slug",
            "title",
            "mode",
            "max_file_size_bytes",
            "max_files_per_request",
            "max_request_bytes",
            "allowed_types",
            "allowed_extensions",
            "filename_max_bytes",
            "image_max_pixels",
            "image_max_side",
            "image_reencode",
        ]
        read_only_fields = fields


@extend_schema(responses={200: UploadPolicyLimitsSerializer(many=True), **errors()})
class UploadPolicyList(generics.ListAPIView):
    """GET: the limits and allowed types of the policies the caller may upload under."""

    serializer_class = UploadPolicyLimitsSerializer
    pagination_class = None

    def get_queryset(self):
        return policies_usable_by(self.request.user)
