from __future__ import annotations

from django.urls import include, path

from tests.headers import views

urlpatterns = [
    path("t/nonce/", views.nonce_page),
    path("t/plain/", views.plain_page),
    path("t/json/", views.json_view),
    path("t/updated/", views.updated_page),
    path("t/replaced/", views.replaced_page),
    path("t/exempt/", views.exempt_page),
    path("t/powered/", views.powered_page),
    path("t/browser-nonce/", views.browser_nonce_page),
    path("", include("project.urls")),
]

handler404 = "project.views.handler404"
handler500 = "project.views.handler500"
