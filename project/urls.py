from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from policies.audit_api import AuditEntryDetail, AuditEntryList, AuditEntryRollback, AuditVerify
from policies.crud_api import HeaderRuleDetail, HeaderRuleList, UploadPolicyDetail, UploadPolicyList
from policies.exchange_api import PoliciesExport, PoliciesImport
from policies.report_views import csp_report
from policies.reports_api import CspReportList, HeaderPreview
from project import views
from project.api_root import api_root
from uploads.api import (
    UploadDetail,
    UploadDownload,
    UploadEventList,
    UploadEventSummary,
    UploadListCreate,
)

api_v1 = [
    path("", api_root, name="api-root"),
    path("uploads/", UploadListCreate.as_view(), name="api-uploads"),
    path("uploads/<uuid:pk>/", UploadDetail.as_view(), name="api-upload"),
    path("uploads/<uuid:pk>/download/", UploadDownload.as_view(), name="api-upload-download"),
    path("upload-policies/", UploadPolicyList.as_view(), name="api-upload-policies"),
    path("upload-policies/<int:pk>/", UploadPolicyDetail.as_view(), name="api-upload-policy"),
    path("header-rules/", HeaderRuleList.as_view(), name="api-header-rules"),
    path("header-rules/<int:pk>/", HeaderRuleDetail.as_view(), name="api-header-rule"),
    path("audit/", AuditEntryList.as_view(), name="api-audit"),
    path("audit/verify/", AuditVerify.as_view(), name="api-audit-verify"),
    path("audit/<int:seq>/", AuditEntryDetail.as_view(), name="api-audit-entry"),
    path("audit/<int:seq>/rollback/", AuditEntryRollback.as_view(), name="api-audit-rollback"),
    path("upload-events/", UploadEventList.as_view(), name="api-upload-events"),
    path("upload-events/summary/", UploadEventSummary.as_view(), name="api-upload-events-summary"),
    path("csp-reports/", CspReportList.as_view(), name="api-csp-reports"),
    path("headers/preview/", HeaderPreview.as_view(), name="api-headers-preview"),
    path("policies/export/", PoliciesExport.as_view(), name="api-policies-export"),
    path("policies/import/", PoliciesImport.as_view(), name="api-policies-import"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", views.favicon),
    # Only login and logout: with no email configured, password reset must not be reachable.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("uploads.urls")),
    path("csp-report/", csp_report, name="csp-report"),
]

handler400 = "project.views.handler400"
handler403 = "project.views.handler403"
handler404 = "project.views.handler404"
handler500 = "project.views.handler500"
