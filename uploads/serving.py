"""Serving stored files back: streamed, as attachments, with the sniffed type."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from django.http import FileResponse

from policies.filetypes import RASTER_IMAGE_TYPES
from uploads.models import Upload
from uploads.services import storage


def served_inline(upload: Upload) -> bool:
    """Only raster images the pipeline re-encoded, and only when their policy says so."""
    return (
        upload.reencoded
        and upload.content_type in RASTER_IMAGE_TYPES
        and upload.policy.serve_images_inline
    )


def ascii_fallback(name: str) -> str:
    """The name in ASCII for clients that ignore filename* (RFC 6266 section 4.3)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = "".join("_" if ch in '"\\' or not ch.isprintable() else ch for ch in plain)
    stem, dot, extension = plain.rpartition(".")
    if not (stem if dot else plain).strip(" ._"):  # nothing left of the name but its extension
        return f"download{dot}{extension}"
    return plain


def content_disposition(name: str, *, inline: bool) -> str:
    disposition = "inline" if inline else "attachment"
    fallback = ascii_fallback(name)
    if fallback == name:
        return f'{disposition}; filename="{name}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_response(upload: Upload) -> FileResponse:
    """The stored bytes under the sniffed type; the header rules add the download CSP."""
    response = FileResponse(
        storage().open(upload.stored_name, "rb"), content_type=upload.content_type
    )
    response["Content-Disposition"] = content_disposition(
        upload.original_name, inline=served_inline(upload)
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
