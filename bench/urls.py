"""A trivial view for the header benchmark."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path


def trivial(request):
    return HttpResponse("ok")


urlpatterns = [path("bench/", trivial)]
