"""System checks for upload storage."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register


def _served_folders() -> list[Path]:
    folders = [settings.STATIC_ROOT, settings.MEDIA_ROOT, *settings.STATICFILES_DIRS]
    return [Path(f).resolve() for f in folders if f]


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or b in a.parents or a in b.parents


@register(Tags.security)
def check_upload_root_not_served(app_configs, **kwargs) -> list[Error]:
    """uploads.E001: uploaded files, kept or being checked, never sit in a URL-served folder."""
    errors = []
    for setting in ("UPLOAD_ROOT", "FILE_UPLOAD_TEMP_DIR"):
        kept = Path(getattr(settings, setting)).resolve()
        for folder in _served_folders():
            if _overlaps(kept, folder):
                errors.append(
                    Error(
                        f"{setting} ({kept}) overlaps the URL-served folder {folder}.",
                        hint=f"Set {setting} to a folder outside STATIC_ROOT, MEDIA_ROOT and "
                        "STATICFILES_DIRS; uploads reach users only through the download view.",
                        id="uploads.E001",
                    )
                )
    return errors
