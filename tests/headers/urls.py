from __future__ import annotations

from django.urls import include, path

from tests.headers import views

DOWNLOAD_PATH = "/uploads/test-report/download/"

urlpatterns = [
    path("t/nonce/", views.nonce_page),
    path("t/plain/", views.plain_page),
    path("t/json/", views.json_view),
    path("t/updated/", views.updated_page),
    path("t/replaced/", views.replaced_page),
    path("t/exempt/", views.exempt_page),
    path("t/powered/", views.powered_page),
    path("t/browser-nonce/", views.browser_nonce_page),
    path("t/whoami/", views.whoami_page),
    path("t/redirect/", views.redirect_view),
    # Matched by the seeded `downloads` rule's regex; not a UUID, so the app's own download view
    # (uploads/<uuid>/download/) never sees it, and this pattern comes first anyway.
    path(DOWNLOAD_PATH.strip("/") + "/", views.download_view),
    # The property tests' rules target /p/: a page that reads request.user (Cache-Control).
    path("p/", views.whoami_page),
    path("", include("project.urls")),
]

handler404 = "project.views.handler404"
handler500 = "project.views.handler500"
