"""The project's URLs plus test-only views; the error handlers are the project's own."""

from __future__ import annotations

from django.urls import include, path

from project import views as project_views
from tests.project import views

urlpatterns = [
    path("api/test/raise/<str:kind>/", views.RaisingView.as_view()),
    path("api/test/echo/", views.EchoView.as_view()),
    path("api/test/session/", views.SessionEchoView.as_view()),
    path("api/test/form/", views.plain_form),
    path("api/test/forbidden/", views.plain_forbidden),
    path("test/form/", views.plain_form),
    path("test/log/", views.log_line),
    path("test/boom/", views.boom),
    path("test/csp-canary/", views.csp_canary),
    path("", include("project.urls")),
]

handler400 = project_views.handler400
handler403 = project_views.handler403
handler404 = project_views.handler404
handler500 = project_views.handler500
