"""Step 2 of the pipeline, inspect: the checks each received file passes, in this order.

1. `empty_file`: it has content.
2. `filename_invalid`: its name can be made safe (uploads.names).
3. `extension_not_allowed`: the name's extension is on the policy's list.
4. `type_not_allowed`: the type libmagic sniffs from the content is on the policy's list
   (never the client's Content-Type or the name).
5. `type_mismatch`: the extension is one that type may carry.
6. `malware_detected`: the malware scan (uploads.scanner), as the policy's `scan` says: off;
   on (when a scanner is configured; unreachable, the file is kept and its event says it was
   not scanned); required (no scan, no upload: `scanner_unavailable`, or `file_too_large` for a
   file larger than the scanner takes).
7. By kind: images decode fully within the pixel limits (`image_too_large`, `image_invalid`)
   and are re-encoded when the policy says so; PDFs hold no active content the policy refuses
   (`active_content`); archives and Office documents stay within the archive limits
   (`archive_rejected`, uploads.archives); SVG and XML hold no active content
   (`active_content`, uploads.markup).

The first refusal wins: each check raises UploadRejected. Under a report-only policy a
refusal uploads.rehearsal lists is recorded instead: the file is kept as it arrived (never
re-encoded), the later checks skipped, but the scan (step 6) still runs and is enforced.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import magic
from django.conf import settings

from policies.filetypes import FILE_TYPES, label_of, type_of
from policies.models import ScanMode, UploadPolicy
from policies.units import format_bytes
from project.errors import UploadRejected
from uploads import archives, images, markup, pdfs, sandbox, scanner
from uploads.models import ScanStatus
from uploads.names import extension_of, sanitize_filename
from uploads.receive import ReceivedFile
from uploads.rehearsal import rehearses
from uploads.services import AcceptedFile, FileFacts, size_and_sha256

logger = logging.getLogger("portcullis.uploads")

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
    would_refuse = received.would_refuse
    if not would_refuse:
        try:
            name = check_name_and_type(policy, received, facts)
        except UploadRejected as refusal:
            would_refuse = rehearsed(policy, refusal)
    scan_file(policy, received.temp, facts)
    if not would_refuse:
        try:
            content, reencoded = check_content(policy, received.temp, facts.content_type)
        except UploadRejected as refusal:
            would_refuse = rehearsed(policy, refusal)
    if would_refuse:
        return kept_as_received(policy, received, facts, would_refuse)
    size, sha256 = size_and_sha256(content) if reencoded else (received.size, received.sha256)
    return AcceptedFile(
        facts=facts,
        original_name=name,
        content=content,
        size=size,
        sha256=sha256,
        reencoded=reencoded,
    )


def check_name_and_type(policy: UploadPolicy, received: ReceivedFile, facts: FileFacts) -> str:
    """Steps 1 to 5; returns the safe name."""
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
    return name


def rehearsed(policy: UploadPolicy, refusal: UploadRejected) -> str:
    """The code of a refusal the policy only rehearses; any other refusal is raised."""
    if not rehearses(policy, refusal.code):
        raise refusal
    return refusal.code


def kept_as_received(
    policy: UploadPolicy, received: ReceivedFile, facts: FileFacts, would_refuse: str
) -> AcceptedFile:
    """A rehearsal's file: its bytes untouched, under the safest name it can have."""
    if not facts.content_type:
        facts.content_type = sniff(received.temp)
    try:
        name = sanitize_filename(received.client_name, max_bytes=policy.filename_max_bytes)
    except UploadRejected:
        extensions = (
            FILE_TYPES[facts.content_type].extensions if facts.content_type in FILE_TYPES else ()
        )
        name = f"upload.{extensions[0]}" if extensions else "upload"
    return AcceptedFile(
        facts=facts,
        original_name=name,
        content=received.temp,
        size=received.size,
        sha256=received.sha256,
        reencoded=False,
        would_refuse=would_refuse,
    )


SCANNER_DOWN = (
    "Files cannot be checked for malware right now, and this upload accepts only checked "
    "files. Nothing was stored; please try again later."
)


def scan_file(policy: UploadPolicy, content: IO[bytes], facts: FileFacts) -> None:
    """Step 6; notes in `facts.scan` what happened, for the event."""
    if policy.scan == ScanMode.OFF:
        return
    required = policy.scan == ScanMode.REQUIRED
    if not scanner.scanner_configured():
        facts.scan = ScanStatus.NOT_CONFIGURED
        if required:
            logger.error("policy %s requires a malware scan, but no scanner is configured", policy)
            raise UploadRejected("scanner_unavailable", SCANNER_DOWN)
        return
    try:
        verdict = scanner.scan(content)
    except scanner.ScanTooLarge as too_large:
        facts.scan = ScanStatus.TOO_LARGE
        if required:
            most = f" ({format_bytes(too_large.limit_bytes)})" if too_large.limit_bytes else ""
            raise UploadRejected(
                "file_too_large",
                f"The file is larger than the malware scanner can check{most}, and this "
                "upload accepts only checked files.",
            ) from None
        return
    except scanner.ScannerUnavailable as unavailable:
        logger.warning("malware scanner unavailable (policy %s): %s", policy, unavailable)
        facts.scan = ScanStatus.UNAVAILABLE
        if required:
            raise UploadRejected("scanner_unavailable", SCANNER_DOWN) from None
        return
    if verdict.infected:
        facts.scan, facts.scan_signature = ScanStatus.INFECTED, verdict.signature
        raise UploadRejected(
            "malware_detected", "The malware scanner found malware in this file; it was not stored."
        )
    facts.scan = ScanStatus.CLEAN


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
        with unchecked_refused("archive_rejected", mime):
            sandbox.run(
                archives.inspect_archive,
                content,
                mime,
                archives.ArchiveLimits.of(policy),
                limits=limits,
            )
    elif mime in markup.MARKUP_TYPES:  # HTML has no checker: a policy allows it as it is
        with unchecked_refused("active_content", mime):
            sandbox.run(markup.inspect_markup, content, mime, limits=limits)
    return content, False


@contextmanager
def unchecked_refused(code: str, mime: str) -> Iterator[None]:
    """A file its checker could not finish with is refused as `code`: past the sandbox's limits,
    or on an error the checker did not expect (logged, for a fix; fail closed meanwhile)."""
    try:
        yield
    except UploadRejected:
        raise
    except sandbox.LimitsExceeded:
        reason = "within the time and memory this server allows"
    except OSError:  # the server's own trouble (no process to fork, say), not the file's
        raise
    except Exception:
        logger.exception("the %s check failed unexpectedly; the file is refused", mime)
        reason = "by this server"
    else:
        return
    what = _a(label_of(mime))
    raise UploadRejected(
        code,
        f"{what[0].upper()}{what[1:]} could not be checked {reason}; "
        "this upload does not accept it.",
    )


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
