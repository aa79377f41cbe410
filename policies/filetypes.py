"""The curated registry of file types a policy may allow.

libmagic cannot list the types it knows, so the types (as libmagic names them when sniffing) and
the extensions each may carry are kept here. `active` types can run code in a browser or unpack
into other files; a policy has to allow them by name, and later checks treat them specially.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileType:
    mime: str
    label: str
    extensions: tuple[str, ...]
    kind: str  # image, document, text, archive, markup, data
    active: bool = False
    # What libmagic also reports for this type's files: it sees CSV without commas and JSON as
    # plain text, so a .csv file sniffed as text/plain is a CSV table.
    also_sniffed_as: tuple[str, ...] = ()
    # Holds other files (ZIP, TAR; Office documents are ZIP files): inspected as an archive.
    container: bool = False


FILE_TYPES: dict[str, FileType] = {
    t.mime: t
    for t in [
        FileType("image/png", "PNG image", ("png",), "image"),
        FileType("image/jpeg", "JPEG image", ("jpg", "jpeg"), "image"),
        FileType("image/gif", "GIF image", ("gif",), "image"),
        FileType("image/webp", "WebP image", ("webp",), "image"),
        FileType("image/avif", "AVIF image", ("avif",), "image"),
        FileType("image/tiff", "TIFF image", ("tif", "tiff"), "image"),
        FileType("application/pdf", "PDF document", ("pdf",), "document"),
        FileType("text/plain", "Plain text", ("txt", "text", "log", "md"), "text"),
        FileType("text/csv", "CSV table", ("csv",), "text", also_sniffed_as=("text/plain",)),
        FileType(
            "application/json", "JSON data", ("json",), "data", also_sniffed_as=("text/plain",)
        ),
        FileType(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "Word document",
            ("docx",),
            "document",
            container=True,
        ),
        FileType(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Excel workbook",
            ("xlsx",),
            "document",
            container=True,
        ),
        FileType(
            "application/vnd.oasis.opendocument.text",
            "OpenDocument text",
            ("odt",),
            "document",
            container=True,
        ),
        FileType("application/zip", "ZIP archive", ("zip",), "archive", True, container=True),
        FileType("application/x-tar", "TAR archive", ("tar",), "archive", True, container=True),
        FileType(
            "application/gzip", "gzip archive", ("gz", "tgz"), "archive", True, container=True
        ),
        FileType("text/html", "HTML page", ("html", "htm"), "markup", active=True),
        FileType("image/svg+xml", "SVG drawing", ("svg",), "markup", active=True),
        FileType("text/xml", "XML document", ("xml",), "markup", active=True),
    ]
}

RASTER_IMAGE_TYPES = frozenset(m for m, t in FILE_TYPES.items() if t.kind == "image")


def type_of(sniffed: str, extension: str) -> str:
    """The registry type of a file libmagic sniffed as `sniffed`, given its name's extension.

    Normally the sniffed type itself; a type libmagic reports under another name (CSV as
    text/plain) when the extension says so and the content allows it.
    """
    known = FILE_TYPES.get(sniffed)
    if known and extension in known.extensions:
        return sniffed
    for mime, file_type in FILE_TYPES.items():
        if extension in file_type.extensions and sniffed in file_type.also_sniffed_as:
            return mime
    return sniffed


def label_of(mime: str) -> str:
    """How an end user would name the type ("PNG image"), or the MIME type when unknown."""
    known = FILE_TYPES.get(mime)
    return known.label if known else mime


def extensions_for(mimes: list[str]) -> set[str]:
    return {ext for mime in mimes if mime in FILE_TYPES for ext in FILE_TYPES[mime].extensions}
