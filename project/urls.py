from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from project import views
from project.api_root import api_root

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api_root, name="api-root"),
]

handler400 = "project.views.handler400"
handler403 = "project.views.handler403"
handler404 = "project.views.handler404"
handler500 = "project.views.handler500"
