"""What an uploading client is shown of the policies it may use (policies.crud_api serves them)."""

from __future__ import annotations

from rest_framework import serializers

from policies.models import UploadPolicy


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
