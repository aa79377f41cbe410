"""Uploads and upload events in the admin: read-only lists, filtered by policy, code, user, date;
and the rejections dashboard over the events."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from uploads.dashboard import DAYS, rejections_dashboard
from uploads.models import Upload, UploadEvent
from uploads.services import ACCEPTED


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


class OutcomeFilter(admin.SimpleListFilter):
    """Accepted or refused (any refusal code), and what a rehearsal would have refused."""

    title = "outcome"
    parameter_name = "outcome"
    CONDITIONS = {
        "accepted": Q(code=ACCEPTED),
        "refused": ~Q(code=ACCEPTED),
        "would_refuse": Q(code=ACCEPTED) & ~Q(would_refuse_code=""),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("accepted", "Accepted"),
            ("refused", "Refused"),
            ("would_refuse", "Accepted, a rehearsal would refuse"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        condition = self.CONDITIONS.get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)


@admin.register(UploadEvent)
class UploadEventAdmin(ReadOnlyAdmin):
    change_list_template = "admin/uploads/uploadevent/change_list.html"
    dashboard_template = "admin/uploads/rejections_dashboard.html"
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
        OutcomeFilter,
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

    class Media:
        css = {"all": ("policies/admin.css",)}

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="uploads_uploadevent_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Refused uploads per day and code over the last 30 days, with the CSP reports."""
        if not request.user.has_perm("uploads.view_uploadevent"):
            raise PermissionDenied
        site = self.admin_site.name
        csp_url = (
            reverse(f"{site}:policies_cspreport_changelist")
            if request.user.has_perm("policies.view_cspreport")
            else ""
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Rejections dashboard",
            "subtitle": None,
            "opts": self.opts,
            "days": DAYS,
            "dashboard": rejections_dashboard(
                events_url=reverse(f"{site}:uploads_uploadevent_changelist"), csp_url=csp_url
            ),
            "media": self.media,
        }
        request.current_app = site
        return TemplateResponse(request, self.dashboard_template, context)
