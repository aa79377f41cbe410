"""System checks for upload storage."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register


def _served_folders() -> list[Path]:
    folders = [settings.STATIC_ROOT, settings.MEDIA_ROOT, *settings.STATICFILES_DIRS]
    return [Path(f).resolve() for f in folders if f]


@register(Tags.security)
def check_upload_root_not_served(app_configs, **kwargs) -> list[Error]:
    """uploads.E001: uploaded files must never sit in a folder the web server serves."""
    upload_root = Path(settings.UPLOAD_ROOT).resolve()
    for folder in _served_folders():
        if upload_root == folder or folder in upload_root.parents or upload_root in folder.parents:
            return [
                Error(
                    f"UPLOAD_ROOT ({upload_root}) overlaps the URL-served folder {folder}.",
                    hint="Set UPLOAD_ROOT to a folder outside STATIC_ROOT, MEDIA_ROOT and "
                    "STATICFILES_DIRS; uploads reach users only through the download view.",
                    id="uploads.E001",
                )
            ]
    return []
