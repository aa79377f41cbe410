"""Step 2 of the pipeline, inspect: the checks each received file passes, in this order.

1. `empty_file`: it has content.
2. `filename_invalid`: its name can be made safe (uploads.names).
3. `extension_not_allowed`: the name's extension is on the policy's list.
4. `type_not_allowed`: the type libmagic sniffs from the content is on the policy's list
   (never the client's Content-Type or the name).
5. `type_mismatch`: the extension is one that type may carry.
6. By kind: images decode fully within the pixel limits (`image_too_large`, `image_invalid`)
   and are re-encoded when the policy says so; PDFs hold no active content the policy refuses
   (`active_content`); archives are refused (`archive_rejected`) until archive inspection lands.

The first refusal wins: each check raises UploadRejected.
"""

from __future__ import annotations

import tempfile
from typing import IO

import magic
from django.conf import settings

from policies.filetypes import FILE_TYPES, label_of, type_of
from policies.models import UploadPolicy
from project.errors import UploadRejected
from uploads import images, pdfs, sandbox
from uploads.names import extension_of, sanitize_filename
from uploads.receive import ReceivedFile
from uploads.services import AcceptedFile, FileFacts, size_and_sha256

SNIFF_BYTES = 1024 * 1024  # libmagic's own default window


def received_facts(received: ReceivedFile) -> FileFacts:
    return FileFacts(
        filename=printable(received.client_name), size=received.size, sha256=received.sha256
    )


def printable(name: str) -> str:
    """The client's name fit for an event row and a log line (not for keeping)."""
    return "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in name)[:255]


def sniff(content: IO[bytes]) -> str:
    content.seek(0)
    head = content.read(SNIFF_BYTES)
    content.seek(0)
    return magic.from_buffer(head, mime=True)


def inspect_file(policy: UploadPolicy, received: ReceivedFile, facts: FileFacts) -> AcceptedFile:
    """Run the checks above; `facts` is filled in as they learn (the refusal event reads it)."""
    if received.size == 0:
        raise UploadRejected("empty_file", "The file is empty.")
    name = sanitize_filename(
        received.client_name,
        max_bytes=policy.filename_max_bytes,
        allow_non_ascii=policy.filename_allow_non_ascii,
    )
    extension = extension_of(name)
    check_extension(policy, extension)
    facts.content_type = type_of(sniff(received.temp), extension)
    check_type(policy, facts.content_type, extension)
    content, reencoded = check_content(policy, received.temp, facts.content_type)
    size, sha256 = size_and_sha256(content) if reencoded else (received.size, received.sha256)
    return AcceptedFile(
        facts=facts,
        original_name=name,
        content=content,
        size=size,
        sha256=sha256,
        reencoded=reencoded,
    )


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing (the policy allows no files)"


def check_extension(policy: UploadPolicy, extension: str) -> None:
    if extension in policy.allowed_extensions:
        return
    allowed = _listing([f".{e}" for e in policy.allowed_extensions])
    which = f"Files ending in .{extension} are" if extension else "Files without an extension are"
    raise UploadRejected(
        "extension_not_allowed", f"{which} not accepted here. Accepted: {allowed}."
    )


def check_type(policy: UploadPolicy, mime: str, extension: str) -> None:
    if mime not in policy.allowed_types:
        allowed = _listing([label_of(t) for t in policy.allowed_types])
        found = (
            f"The file's content is {_a(label_of(mime))}, which this upload does not accept."
            if mime in FILE_TYPES
            else f"The file's content ({mime}) is not a type this upload accepts."
        )
        raise UploadRejected("type_not_allowed", f"{found} Accepted: {allowed}.")
    if extension not in FILE_TYPES[mime].extensions:
        expected = " or ".join(f".{e}" for e in FILE_TYPES[mime].extensions)
        raise UploadRejected(
            "type_mismatch",
            f"The file's content is {_a(label_of(mime))}, but its name ends in .{extension}. "
            f"Rename it to end in {expected} and try again.",
        )


def _a(label: str) -> str:
    """The label with its article ("a PNG image", "an HTML page"); acronyms by sound."""
    first = label.split()[0]
    vowel_sound = first[0] in "AEFHILMNORSX" if first.isupper() else first[0] in "aeiouAEIOU"
    return f"an {label}" if vowel_sound else f"a {label}"


def check_content(policy: UploadPolicy, content: IO[bytes], mime: str) -> tuple[IO[bytes], bool]:
    """The kind-specific checks; returns the bytes to keep and whether they were re-encoded.

    Pillow and pypdf run in sandboxed children (uploads.sandbox: CPU, memory and wall-clock
    limits from settings): the image inspection here, the re-encoding inside
    images.reencode_image (so reencoded_copy keeps the file, the child writes into it). A child
    over its limits is a refusal, never a killed worker.
    """
    kind = FILE_TYPES[mime].kind
    limits = sandbox.configured_limits()
    if kind == "image":
        try:
            sandbox.run(
                images.inspect_image,
                content,
                mime=mime,
                max_pixels=policy.image_max_pixels,
                max_side=policy.image_max_side,
                limits=limits,
            )
            if policy.image_reencode:
                return reencoded_copy(content, mime), True
        except sandbox.LimitsExceeded:
            raise UploadRejected(
                "image_invalid",
                "The image could not be checked within the time and memory this server allows.",
            ) from None
    elif mime == "application/pdf":
        try:
            sandbox.run(
                pdfs.inspect_pdf,
                content,
                refuse=refused_pdf_content(policy),
                # Most of the CPU budget: pdfs' own bounds refuse before the child is killed.
                time_budget=limits.cpu_seconds * 0.6,
                limits=limits,
            )
        except sandbox.LimitsExceeded:
            raise UploadRejected(
                "active_content",
                "The PDF could not be checked for active content within the time and memory "
                "this server allows; this upload does not accept it.",
            ) from None
    elif FILE_TYPES[mime].container:
        raise UploadRejected(
            "archive_rejected",
            f"The file is {_a(label_of(mime))}, which holds other files; those cannot be "
            "inspected yet, so such files are not accepted.",
        )
    return content, False


def refused_pdf_content(policy: UploadPolicy) -> set[str]:
    flags = {
        "javascript": policy.pdf_refuse_javascript,
        "launch": policy.pdf_refuse_launch_actions,
        "embedded_files": policy.pdf_refuse_embedded_files,
        "xfa": policy.pdf_refuse_xfa,
    }
    return {kind for kind, refused in flags.items() if refused}


def reencoded_copy(content: IO[bytes], mime: str) -> IO[bytes]:
    """A clean copy in a temporary file, deleted when closed (the attempt closes it)."""
    copy = tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".upload")  # noqa: SIM115
    try:
        images.reencode_image(content, copy, mime=mime)
        copy.flush()
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy
