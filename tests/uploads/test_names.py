"""Upload filenames: ordinary names survive, untidy ones are cleaned, deceptive ones refused."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from project.errors import UploadRejected
from uploads.names import extension_of, sanitize_filename

# Written out again here, so a slip in the module's own tables cannot hide from the tests.
INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}
BIDI = set("\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789¹²³"
}


def refusal(raw: str, **options) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        sanitize_filename(raw, **options)
    return caught.value


def assert_readable(detail: str) -> None:
    """A sentence for an end user: capitalised, ends with a full stop, nothing unprintable."""
    assert detail[0].isupper()
    assert detail.endswith(".")
    assert len(detail.split()) >= 5
    assert detail.isprintable()


def assert_safe(name: str, max_bytes: int) -> None:
    """Every promise the sanitizer makes about what it returns."""
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert not any(unicodedata.category(char) in INVISIBLE for char in name)
    assert not BIDI.intersection(name)
    assert not name.startswith(".")
    assert not name.endswith((".", " "))
    assert name.split(".", 1)[0].rstrip(" ").upper() not in RESERVED
    assert len(name.encode()) <= max_bytes
    assert unicodedata.is_normalized("NFC", name)


# Ordinary names


@pytest.mark.parametrize(
    "name",
    [
        "photo.jpg",
        "IMG_0042.JPG",
        "Quarterly report (final) - 2024.xlsx",
        "Überweisung 2024.pdf",
        "Straße & Söhne.docx",
        "写真.jpg",
        "报告 第二版.pdf",
        "résumé.txt",
        "Café crème.png",
        "report.v2.final.pdf",
        "archive.tar.gz",
        "README",
        "console.log.txt",
        "CONTRACT.pdf",
        "com10.txt",
        "my php notes.txt",
        "php.png",
        "x.exe",
        "shell.php",
        "a",
    ],
)
def test_ordinary_names_survive_unchanged(name):
    assert sanitize_filename(name) == name


def test_a_name_is_normalized_to_nfc():
    decomposed = "re\u0301sume\u0301.txt"
    assert sanitize_filename(decomposed) == "résumé.txt"


def test_ascii_only_accepts_plain_ascii_names():
    assert sanitize_filename("Report 2024-v2.pdf", allow_non_ascii=False) == "Report 2024-v2.pdf"


def test_ascii_only_judges_the_cleaned_name():
    """Invisible characters are removed and odd spaces made plain before the ASCII check."""
    assert sanitize_filename("photo\u200b.jpg", allow_non_ascii=False) == "photo.jpg"
    assert sanitize_filename("no\u00a0break.txt", allow_non_ascii=False) == "no break.txt"


# Sanitization


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Only the last path part is kept, whichever separator the client used.
        ("C:\\fakepath\\photo.jpg", "photo.jpg"),
        ("/home/alice/photo.jpg", "photo.jpg"),
        ("docs/sub\\mixed/photo.jpg", "photo.jpg"),
        ("./photo.jpg", "photo.jpg"),
        # Control and format characters are removed.
        ("photo\t.jpg", "photo.jpg"),
        ("two\nlines.txt", "twolines.txt"),
        ("zero\u200bwidth.png", "zerowidth.png"),
        ("\ufeffbom.txt", "bom.txt"),
        ("soft\u00adhyphen.txt", "softhyphen.txt"),
        ("left\u200emark.txt", "leftmark.txt"),
        ("private\ue000use.txt", "privateuse.txt"),
        ("line\u2028sep\u2029.txt", "linesep.txt"),
        ("bell\x07\x1b[0m.txt", "bell[0m.txt"),
        ("lone\ud800surrogate.txt", "lonesurrogate.txt"),
        # Whitespace runs become one space.
        ("many    spaces.txt", "many spaces.txt"),
        ("no\u00a0break\u3000wide.txt", "no break wide.txt"),
        ("  padded name.txt  ", "padded name.txt"),
        # Leading dots go; trailing dots and spaces go, as Windows drops them.
        (".htaccess", "htaccess"),
        ("...hidden.txt", "hidden.txt"),
        (". . leading.txt", "leading.txt"),
        ("x.exe.", "x.exe"),
        ("photo.jpg . . ", "photo.jpg"),
        ("name.", "name"),
        # Removing an invisible character can join a letter and its accent: still NFC.
        ("e\u200b\u0301.txt", "é.txt"),
    ],
)
def test_untidy_names_are_cleaned(raw, expected):
    assert sanitize_filename(raw) == expected


# Refusals


@pytest.mark.parametrize(
    ("raw", "options"),
    [
        # NUL anywhere.
        ("photo.jpg\x00.php", {}),
        ("\x00", {}),
        # Bidi controls, which disguise the extension.
        ("invoice\u202egnp.exe", {}),
        ("\u202aphoto.jpg", {}),
        ("photo\u2066.jpg", {}),
        ("photo\u2069.jpg", {}),
        ("arabic\u061cmark.txt", {}),
        # Path traversal with either separator.
        ("../../etc/x.png", {}),
        ("..\\x.png", {}),
        ("uploads/../x.png", {}),
        ("..", {}),
        ("a/ .. /x.png", {}),
        ("..\u200b/x.png", {}),
        # Windows device names as the stem.
        ("con.png", {}),
        ("Nul.tar.gz", {}),
        ("LPT1.txt", {}),
        ("aux", {}),
        ("PRN .pdf", {}),
        ("com0.txt", {}),
        ("COM9.txt", {}),
        ("com¹.txt", {}),
        ("LPT³.doc", {}),
        ("conin$.txt", {}),
        ("CONOUT$", {}),
        ("folder/con.png", {}),
        # Executable or script extensions hidden before the last one.
        ("shell.php.png", {}),
        ("x.exe.pdf", {}),
        ("a.PHP5.jpg", {}),
        ("page.phtml.gif", {}),
        ("tool.ps1.txt", {}),
        ("picture.svg.png", {}),
        ("double.php..png", {}),
        ("spaced.php .png", {}),
        ("a.b.jsp.c.pdf", {}),
        # Nothing left once cleaned.
        ("", {}),
        ("   ", {}),
        ("...", {}),
        (".", {}),
        ("\u200b\u200b", {}),
        ("C:\\fakepath\\", {}),
        ("photo/", {}),
        # Non-ASCII when the policy allows ASCII only.
        ("Überweisung.pdf", {"allow_non_ascii": False}),
        ("写真.jpg", {"allow_non_ascii": False}),
        # The extension alone does not fit.
        ("a." + "x" * 300, {}),
        ("photo." + "x" * 15, {"max_bytes": 16}),
    ],
)
def test_names_that_cannot_be_made_safe_are_refused(raw, options):
    rejected = refusal(raw, **options)
    assert rejected.code == "filename_invalid"
    assert_readable(rejected.detail)


def test_a_refusal_never_echoes_control_characters():
    for raw in ["shell\t.php.png", "con\x07.png", "\x1b../x.png", "bad\u202e.exe"]:
        detail = refusal(raw).detail
        assert detail.isprintable()
        assert "\x1b" not in detail


def test_each_refusal_says_what_is_wrong():
    assert "null character" in refusal("a\x00.png").detail
    assert "text-direction" in refusal("invoice\u202egnp.exe").detail
    assert '".."' in refusal("../x.png").detail
    assert '"CON"' in refusal("con.png").detail
    assert '"LPT1"' in refusal("lpt1 .txt").detail
    assert '".php5"' in refusal("a.PHP5.jpg").detail
    assert "empty" in refusal("...").detail
    assert "ASCII" in refusal("é.txt", allow_non_ascii=False).detail
    assert "16 bytes" in refusal("a." + "x" * 20, max_bytes=16).detail
    assert "Rename the file" in refusal("x.exe.pdf").detail


# Length


def test_a_long_ascii_name_keeps_its_extension():
    name = sanitize_filename("a" * 300 + ".pdf")
    assert name == "a" * 251 + ".pdf"
    assert len(name.encode()) == 255


@pytest.mark.parametrize("max_bytes", [16, 17, 18, 19, 20, 64, 100, 255])
@pytest.mark.parametrize("stem", ["写真" * 100, "Überweisung" * 30, "😀" * 80, "é" * 200])
def test_a_long_multibyte_name_is_cut_on_a_character_boundary(stem, max_bytes):
    name = sanitize_filename(stem + ".jpeg", max_bytes=max_bytes)
    assert len(name.encode()) <= max_bytes
    assert name.endswith(".jpeg")
    assert stem.startswith(name.removesuffix(".jpeg"))
    assert len(name.encode()) > max_bytes - 4  # no more than one character's bytes wasted


def test_shortening_only_touches_the_last_extension():
    name = sanitize_filename("archive-" + "x" * 20 + ".tar.gz", max_bytes=20)
    assert name == "archive-xxxxxxxxx.gz"


def test_shortening_never_leaves_an_accent_without_its_letter():
    """No precomposed form exists for "q" with an acute: NFC keeps it as letter plus mark."""
    name = sanitize_filename("ab" + "q\u0301" * 20 + ".txt", max_bytes=16)
    assert name == "ab" + "q\u0301" * 3 + ".txt"  # not "...q" with its accent cut off
    assert len(name.encode()) <= 16


def test_shortening_strips_dots_and_spaces_it_uncovers():
    name = sanitize_filename("notes . . . . . . . . . . . .txt", max_bytes=16)
    assert name == "notes.txt"


def test_shortening_that_uncovers_a_reserved_stem_is_refused():
    rejected = refusal("CONSOLE.abcdefghijklm", max_bytes=17)
    assert '"CON"' in rejected.detail


def test_shortening_that_uncovers_a_hidden_extension_is_refused():
    rejected = refusal("shell.php.aaaaaaaaaaaa.png", max_bytes=13)
    assert '".php"' in rejected.detail


def test_a_name_that_fits_exactly_is_kept():
    assert sanitize_filename("abcdefghijkl.pdf", max_bytes=16) == "abcdefghijkl.pdf"


def test_a_long_name_without_extension_is_shortened():
    assert sanitize_filename("x" * 40, max_bytes=16) == "x" * 16


# extension_of


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("photo.jpg", "jpg"),
        ("PHOTO.JPG", "jpg"),
        ("archive.tar.gz", "gz"),
        ("report.v2.final.pdf", "pdf"),
        ("README", ""),
        ("写真.JPEG", "jpeg"),
        ("résumé.Txt", "txt"),
        (".bashrc", ""),
        ("", ""),
    ],
)
def test_extension_of(name, extension):
    assert extension_of(name) == extension


def test_extension_of_a_sanitized_name():
    assert extension_of(sanitize_filename("C:\\fakepath\\Scan 01.PDF. ")) == "pdf"


# Properties

# Fragments the sanitizer cares about, mixed into arbitrary text far more often than chance would.
TRICKY = st.sampled_from(
    [
        *("/", "\\", ".", "..", " ", "\x00", "\t", "\u202e", "\u200b", "\u0301", "\u00a0"),
        *("\ud800", "\ue000", "\u2028", "é", "写", "CON", "lpt1", "COM¹", "conout$"),
        *(".php", ".exe", ".svg"),
    ]
)
NAMES = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), TRICKY), max_size=80).map("".join),
)
EXTENSIONS = st.one_of(
    st.sampled_from(["png", "JPG", "pdf", "tar.gz", "php.png", "", "写真", "x" * 30]),
    st.text(max_size=12),
)


def outcome(raw: str, **options) -> str | UploadRejected:
    """The sanitized name, or the refusal; anything else raised fails the test."""
    try:
        return sanitize_filename(raw, **options)
    except UploadRejected as rejected:
        return rejected


def check_sanitized(raw: str, max_bytes: int, allow_non_ascii: bool) -> None:
    """Either a refusal with our code and a readable detail, or a name that keeps every promise."""
    result = outcome(raw, max_bytes=max_bytes, allow_non_ascii=allow_non_ascii)
    if isinstance(result, UploadRejected):
        assert result.code == "filename_invalid"
        assert_readable(result.detail)
        return
    assert_safe(result, max_bytes)
    if not allow_non_ascii:
        assert result.isascii()


@settings(max_examples=500)
@given(raw=NAMES, max_bytes=st.integers(16, 255), allow_non_ascii=st.booleans())
def test_any_text_is_refused_or_made_safe(raw, max_bytes, allow_non_ascii):
    check_sanitized(raw, max_bytes, allow_non_ascii)


@settings(max_examples=500)
@given(
    stem=NAMES,
    extension=EXTENSIONS,
    max_bytes=st.integers(16, 255),
    allow_non_ascii=st.booleans(),
)
def test_any_text_with_an_extension_is_refused_or_made_safe(
    stem, extension, max_bytes, allow_non_ascii
):
    check_sanitized(f"{stem}.{extension}", max_bytes, allow_non_ascii)


@settings(max_examples=500)
@given(stem=st.text(st.characters(exclude_characters="/\\")), max_bytes=st.integers(16, 255))
def test_a_safe_name_keeps_its_extension(stem, max_bytes):
    """Shortening works on the stem: a name that survives still ends with its extension."""
    name = outcome(f"a{stem}.pdf", max_bytes=max_bytes)
    if not isinstance(name, UploadRejected):
        assert extension_of(name) == "pdf"
