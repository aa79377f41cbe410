"""Uploads and upload events in the admin: read-only lists, filtered by policy, code, user, date."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from uploads.models import Upload, UploadEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows are written by the pipeline only; the admin looks."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = [
        "original_name",
        "owner",
        "policy",
        "size_bytes",
        "content_type",
        "status",
        "created_at",
    ]
    list_filter = [
        "policy",
        "status",
        "content_type",
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["original_name", "sha256", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["owner", "policy"]


@admin.register(UploadEvent)
class UploadEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "code",
        "policy_slug",
        "user",
        "filename",
        "size_bytes",
        "content_type",
        "would_refuse_code",
        "scan",
        "client_ip",
    ]
    list_filter = [
        "code",
        "would_refuse_code",
        "scan",
        "policy_slug",
        ("user", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["filename", "sha256", "request_id", "user__username"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
