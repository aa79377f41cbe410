"""Upload filenames made safe to keep and show, or refused when they cannot be.

The pipeline hands over the filename exactly as the client sent it (HTML entities decoded, nothing
trimmed), so it may carry folder paths, NUL, control or bidi characters. `sanitize_filename` cleans
what is only untidy and refuses, with `filename_invalid`, what is there to deceive: a traversal, a
disguised extension, a Windows device name. The result is a display name, not a storage path.
"""

from __future__ import annotations

import re
import unicodedata

from project.errors import UploadRejected

# Characters that reorder the text around them, so "invoice\u202egnp.exe" shows as "invoiceexe.png".
BIDI_CONTROLS = frozenset("\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Removed wherever they appear: control, format (zero-width), private-use, surrogate, unassigned,
# line and paragraph separator characters. NUL and the bidi controls are refused before this.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})

# Device names Windows opens instead of a file, whatever extension follows (case-insensitive).
WINDOWS_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)

# Extensions a web server or desktop may run or render as active content. Refused as an INNER
# extension ("shell.php.png", "x.exe.pdf"), where they disguise what the file is; a LAST extension
# is the upload policy's allowlist to judge. Kept small on purpose: each entry is a known trick.
HIDDEN_EXECUTABLE_EXTENSIONS = frozenset(
    {
        # Server-side scripts (Apache's mod_mime runs "x.php.png" as PHP).
        *("php", "php3", "php4", "php5", "php6", "php7", "php8", "phtml", "phar"),
        *("asp", "aspx", "jsp", "cgi", "shtml", "pl", "py", "rb", "sh", "bash"),
        # Windows programs and scripts.
        *("exe", "dll", "com", "bat", "cmd", "msi", "scr", "ps1", "vbs", "hta"),
        # Code that runs elsewhere: Java, and script in a browser.
        *("js", "jar", "html", "htm", "svg"),
    }
)

_WHITESPACE_RUN = re.compile(r"\s+")
_PATH_SEPARATORS = re.compile(r"[/\\]")

NUL_DETAIL = "The file name contains a null character. Rename the file and try again."
BIDI_DETAIL = (
    "The file name contains invisible text-direction characters, which can disguise the real "
    "file type. Rename the file without them."
)
TRAVERSAL_DETAIL = (
    'The file name contains a ".." folder reference. Send the file name only, without a '
    "folder path."
)
EMPTY_DETAIL = (
    "The file name is empty once dots, spaces and invisible characters are removed. Rename the "
    "file and try again."
)
NON_ASCII_DETAIL = (
    "The file name may only use ASCII characters here (English letters, digits and common "
    "punctuation). Rename the file and try again."
)


def sanitize_filename(raw: str, *, max_bytes: int = 255, allow_non_ascii: bool = True) -> str:
    """The name to keep and show, made safe.

    Raises UploadRejected("filename_invalid", detail) for what cannot be made safe.
    """
    text = unicodedata.normalize("NFC", raw)
    _refuse_deceptive_characters(text)
    text = unicodedata.normalize("NFC", _remove_invisible(text))
    _refuse_traversal(text)
    name = _tidy(_last_path_part(text))
    _refuse_unsafe_name(name, allow_non_ascii=allow_non_ascii)
    shortened = _fit_to_bytes(name, max_bytes)
    if shortened != name:
        # Shortening the stem can uncover a reserved stem or a hidden extension ("CONSOLE.png").
        _refuse_unsafe_name(shortened, allow_non_ascii=allow_non_ascii)
    return shortened


def extension_of(name: str) -> str:
    """The last extension of a sanitized name, lower-cased, without the dot ("" when none)."""
    stem, _, extension = name.rpartition(".")
    return extension.lower() if stem else ""


def _reject(detail: str) -> UploadRejected:
    return UploadRejected("filename_invalid", detail)


def _refuse_deceptive_characters(text: str) -> None:
    """NUL truncates names in C code and bidi controls disguise extensions: neither is cleaned."""
    if "\x00" in text:
        raise _reject(NUL_DETAIL)
    if not BIDI_CONTROLS.isdisjoint(text):
        raise _reject(BIDI_DETAIL)


def _remove_invisible(text: str) -> str:
    """Drop control, zero-width and other characters nobody can see or type on purpose."""
    return "".join(char for char in text if unicodedata.category(char) not in INVISIBLE_CATEGORIES)


def _refuse_traversal(text: str) -> None:
    """A ".." segment (either separator, surrounding spaces ignored) only climbs folders."""
    if any(segment.strip() == ".." for segment in _PATH_SEPARATORS.split(text)):
        raise _reject(TRAVERSAL_DETAIL)


def _last_path_part(text: str) -> str:
    """Browsers on Windows may send "C:\\fakepath\\photo.jpg"; only "photo.jpg" is the name."""
    return _PATH_SEPARATORS.split(text)[-1]


def _tidy(name: str) -> str:
    """One space per whitespace run; no leading dots (hidden files) or trailing dots and spaces,
    which Windows drops, turning "x.exe." into "x.exe"."""
    name = _WHITESPACE_RUN.sub(" ", name)
    return name.lstrip(". ").rstrip(". ")


def _refuse_unsafe_name(name: str, *, allow_non_ascii: bool) -> None:
    if not name:
        raise _reject(EMPTY_DETAIL)
    if not allow_non_ascii and not name.isascii():
        raise _reject(NON_ASCII_DETAIL)
    _refuse_reserved_stem(name)
    _refuse_hidden_executable(name)


def _refuse_reserved_stem(name: str) -> None:
    """Windows maps "con.png" or "LPT1 .txt" to a device, whatever follows the first dot."""
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in WINDOWS_RESERVED_STEMS:
        raise _reject(
            f'The file name starts with "{stem}", a device name Windows reserves, so the file '
            "could not be opened there. Rename the file."
        )


def _refuse_hidden_executable(name: str) -> None:
    """An executable or script extension before the last one disguises what the file is."""
    inner_extensions = name.split(".")[1:-1]
    for extension in inner_extensions:
        if extension.strip().lower() in HIDDEN_EXECUTABLE_EXTENSIONS:
            raise _reject(
                f'The file name hides a ".{extension.strip().lower()}" extension before its last '
                "one, a common way to disguise a program or script. Rename the file so it ends "
                "with its real extension only."
            )


def _fit_to_bytes(name: str, max_bytes: int) -> str:
    """Shorten the stem, never the extension, until the UTF-8 name fits in `max_bytes`."""
    if len(name.encode()) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    suffix = dot + extension
    shortened = _cut_to_bytes(stem, max_bytes - len(suffix.encode())).rstrip(". ")
    if not shortened:
        raise _reject(
            f"The file name is too long: it must fit in {max_bytes} bytes, and its extension "
            "leaves no room for a name. Rename the file with a shorter extension."
        )
    return shortened + suffix


def _cut_to_bytes(text: str, budget: int) -> str:
    """The longest prefix within `budget` UTF-8 bytes that splits no character from its marks."""
    if budget <= 0:
        return ""
    cut = text.encode()[:budget].decode("utf-8", "ignore")  # drops a split multi-byte character
    while cut and len(cut) < len(text) and unicodedata.category(text[len(cut)]).startswith("M"):
        cut = cut[:-1]  # the next character is a combining mark: drop the base it belongs to
    return cut
