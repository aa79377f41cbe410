"""The upload pages (the API's routes are in project/urls.py)."""

from __future__ import annotations

from django.urls import path

from uploads import views

app_name = "uploads"

urlpatterns = [
    path("upload/", views.upload_page, name="upload"),
    path("upload/<slug:slug>/", views.upload_page, name="upload-to"),
    path("uploads/", views.my_uploads, name="mine"),
    path("uploads/<uuid:pk>/download/", views.download, name="download"),
    path("uploads/<uuid:pk>/delete/", views.delete, name="delete"),
]
