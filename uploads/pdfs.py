"""The PDF step of the upload pipeline: refuse PDFs that carry active content.

Two independent scans look for the names that make a PDF act (JavaScript, launch actions,
embedded files, XFA forms), and their findings are joined, so a file built to confuse one scan
still meets the other:

1. pypdf parses the file and every object it lists (the cross-reference table, the object
   streams, the trailer) is walked for the names it uses as keys and as values; pypdf has
   already decoded `#xx` escapes in them. pypdf's parse is the same kind of reading a viewer
   does, so this scan sees what the viewer will see.
2. A raw scan reads the bytes in chunks (the file is never held whole) and finds the same names
   as tokens, decoding `#xx` escapes itself; it also inflates each Flate-compressed object
   stream (the one compressed place a viewer reads objects from) and scans what comes out, up
   to a total cap. It needs no parse, so damage that leads pypdf astray cannot hide a name from
   it.

A PDF pypdf cannot open or walk (damaged beyond repair, or encrypted with a password other
than the empty one) is reported as "unparseable", and `inspect_pdf` refuses it whatever the
policy says: a file nobody could check is not accepted.
"""

from __future__ import annotations

import heapq
import logging
import re
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pypdf import PasswordType, PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, StreamObject

from project.errors import UploadRejected

logger = logging.getLogger("portcullis.uploads")

ACTIVE_KINDS = ("javascript", "launch", "embedded_files", "xfa")
UNPARSEABLE = "unparseable"

_KIND_OF_NAME = {
    "JavaScript": "javascript",
    "JS": "javascript",
    "Launch": "launch",
    "EmbeddedFile": "embedded_files",
    "EmbeddedFiles": "embedded_files",
    "FileAttachment": "embedded_files",
    "XFA": "xfa",
}
_OBJECT_STREAM_NAME = "ObjStm"

_KIND_PHRASES = {
    "javascript": "JavaScript",
    "launch": "a launch action",
    "embedded_files": "an embedded file",
    "xfa": "an XFA form",
}
_UNPARSEABLE_DETAIL = (
    "The PDF could not be checked for active content because it is damaged or encrypted; "
    "this upload does not accept it."
)

# pypdf walk: how deep dictionaries and arrays may nest inside one object. Real files stay far
# below this; deeper nesting is treated as damage (unparseable), never as "nothing found".
_MAX_NESTING = 64

# Raw scan sizes.
_CHUNK_SIZE = 1 << 20
# Bytes carried over from one chunk to the next, so a token cut at the seam is read whole the
# next time: far longer than the longest name searched for, fully #xx-escaped (1 + 14 * 3).
_OVERLAP = 256
# How far after an /ObjStm name the `stream` keyword of that object stream may be.
_OBJECT_STREAM_REACH = 4096
# Inflation caps: total bytes inflated across the file, and object streams inflated.
_MAX_INFLATED_BYTES = 64 << 20
_MAX_OBJECT_STREAMS = 100_000
_FIRST_READ = 512  # inflation reads start small (most object streams are), then double

# A name of at most this many bytes as written (/JS, /XFA) turns up in compressed or binary
# data by chance (/JS followed by a delimiter: about once in 270 MB of random bytes), so the
# raw scan counts it only where the bytes just before it read as PDF syntax (printable ASCII).
_SHORT_TOKEN = 4
_SYNTAX_BEFORE_SHORT_TOKEN = 8
_PDF_SYNTAX = re.compile(rb"[\t\n\x0c\r\x20-\x7e]*")

# What ends a PDF name: white space and the delimiter characters.
_DELIMITERS = b"\x00\t\n\x0c\r ()<>[]{}/%"


def find_active_content(source: BinaryIO) -> set[str]:
    """Which ACTIVE_KINDS the PDF holds, found by pypdf AND by a raw scan of the bytes.

    The set may also hold "unparseable" when pypdf could not open or walk the file. `source`
    is read from its start and left at position 0.
    """
    try:
        source.seek(0)
        try:
            kinds = _kinds_found_by_pypdf(source)
        except Exception as error:  # pypdf raises many types on damaged input; all mean "unchecked"
            logger.info("PDF not parseable for the active-content check: %.200r", error)
            kinds = {UNPARSEABLE}
        return kinds | _kinds_found_in_raw_bytes(source)
    finally:
        source.seek(0)


def inspect_pdf(source: BinaryIO, *, refuse: Iterable[str]) -> None:
    """Raise UploadRejected("active_content", detail) if the PDF holds any kind in `refuse`.

    An unparseable PDF is refused whatever `refuse` holds (fail closed). When refused kinds were
    found, the detail names them, even in a damaged file. `source` is left at position 0.
    """
    refused = frozenset(refuse)
    unknown = refused - set(ACTIVE_KINDS)
    if unknown:
        raise ValueError(f"unknown PDF content kinds {sorted(unknown)}; known: {ACTIVE_KINDS}")
    found = find_active_content(source)
    named = [kind for kind in ACTIVE_KINDS if kind in found and kind in refused]
    if named:
        raise UploadRejected("active_content", _refusal_detail(named))
    if UNPARSEABLE in found:
        raise UploadRejected("active_content", _UNPARSEABLE_DETAIL)


def _refusal_detail(kinds: list[str]) -> str:
    """Name what was found: "The PDF contains JavaScript and an embedded file; this upload ..."."""
    phrases = [_KIND_PHRASES[kind] for kind in kinds]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"The PDF contains {listed}; this upload does not accept PDFs with active content."


def _kinds_named(names: Iterable[str]) -> set[str]:
    return {_KIND_OF_NAME[name] for name in names if name in _KIND_OF_NAME}


# --- Scan 1: pypdf ----------------------------------------------------------------------------


def _kinds_found_by_pypdf(source: BinaryIO) -> set[str]:
    """The kinds named in the trailer and in every object pypdf lists; raises if it cannot read.

    Encrypted files are opened with the empty user password (what a viewer tries first); any
    other password makes the file unreadable here, so it raises.
    """
    reader = PdfReader(source, strict=False)
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise ValueError("the PDF is encrypted with a password")
    names = set(_names_in(reader.trailer))
    for reference in _every_object(reader):
        obj = reader.get_object(reference)
        names.update(_names_in(obj))
        _forget_stream_data(reader, reference, obj)
    return _kinds_named(name[1:] for name in names)


def _every_object(reader: PdfReader) -> list[IndirectObject]:
    """Every object the file lists, reachable from the catalog or not (orphans hide things too)."""
    listed = [
        IndirectObject(number, generation, reader)
        for generation, entries in list(reader.xref.items())
        for number in list(entries)
    ]
    in_object_streams = [IndirectObject(number, 0, reader) for number in list(reader.xref_objStm)]
    return listed + in_object_streams


def _forget_stream_data(reader: PdfReader, reference: IndirectObject, obj: object) -> None:
    """Drop a walked stream (an image can be hundreds of MiB) from pypdf's cache of objects.

    Object streams stay cached: pypdf reads the objects inside them from the cached copy.
    """
    if isinstance(obj, StreamObject) and dict.get(obj, "/Type") != "/ObjStm":
        reader.resolved_objects.pop((reference.generation, reference.idnum), None)


def _names_in(root: object) -> Iterator[str]:
    """Every name used as a key or a value inside one object, without following references.

    Iterative, with a nesting limit, so a hostile file can neither recurse Python to death nor
    loop: references are not followed (every object is walked on its own anyway).
    """
    pending: list[tuple[object, int]] = [(root, 0)]
    while pending:
        obj, depth = pending.pop()
        if isinstance(obj, NameObject):
            yield str(obj)
        elif isinstance(obj, (DictionaryObject, ArrayObject)):
            if depth >= _MAX_NESTING:
                raise ValueError(f"objects nest deeper than {_MAX_NESTING} levels")
            if isinstance(obj, DictionaryObject):
                for key, value in dict.items(obj):
                    yield str(key)
                    pending.append((value, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in list.__iter__(obj))


# --- Scan 2: the raw bytes --------------------------------------------------------------------


def _escapable_name(name: str) -> bytes:
    """A regex for /name as it may be written: each character as itself or #xx hex-escaped."""
    parts = []
    for char in name:
        hex_digits = "".join(
            f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{ord(char):02x}"
        )
        parts.append(b"(?:%s|#%s)" % (re.escape(char).encode(), hex_digits.encode()))
    return b"".join(parts)


# A name searched for, ending where PDF names end: at whitespace, a delimiter or the end of data.
_NAME_TOKEN = re.compile(
    rb"/(?:"
    + b"|".join(_escapable_name(name) for name in (*_KIND_OF_NAME, _OBJECT_STREAM_NAME))
    + rb")(?![^"
    + re.escape(_DELIMITERS)
    + rb"])"
)
# The `stream` keyword and the end of line after it. Both patterns start with a literal, which
# keeps the regex engine fast; the byte before `stream` (not `endstream`) is checked in Python.
_STREAM_KEYWORD = re.compile(rb"stream[ \t]*(?:\r\n|\r|\n)?")
_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")


def _decoded_name(token: bytes) -> str:
    """/J#61vaScript -> JavaScript."""
    return _HEX_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), token[1:]).decode("latin-1")


def _looks_like_zlib(head: bytes) -> bool:
    """The two-byte zlib header of Flate data (RFC 1950): deflate, a valid window, checksum."""
    return (
        len(head) == 2
        and head[0] & 0x0F == 8
        and head[0] >> 4 <= 7
        and (head[0] << 8 | head[1]) % 31 == 0
    )


class _TokenScanner:
    """Finds the names searched for in bytes fed chunk by chunk, and where object streams start.

    Between chunks it keeps the last _OVERLAP bytes: a token that starts in them is read on the
    next feed, whole, and a token that starts before them ends inside the buffer already.
    """

    def __init__(self, *, find_object_streams: bool) -> None:
        self.names: set[str] = set()
        self.object_stream_starts = array("q")  # file offsets of Flate object-stream data
        self._find_object_streams = find_object_streams
        self._buffer = b""
        self._buffer_offset = 0  # file offset of self._buffer[0]
        self._resume = 0  # index in self._buffer where the next token may start
        self._object_stream_name_at: int | None = None  # file offset of an unmatched /ObjStm

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        self._scan(until=len(self._buffer) - _OVERLAP)

    def finish(self) -> None:
        self._scan(until=len(self._buffer))

    def _scan(self, until: int) -> None:
        """Take the tokens that start before `until`; keep the rest (and a little before it)."""
        if until <= self._resume:
            return
        for match in heapq.merge(
            self._matches(_NAME_TOKEN, until),
            self._matches(_STREAM_KEYWORD, until) if self._find_object_streams else (),
            key=lambda match: match.start(),
        ):
            if match.re is _NAME_TOKEN:
                self._take_name(match)
            else:
                self._take_stream_keyword(match)
        keep_from = max(0, until - _SYNTAX_BEFORE_SHORT_TOKEN)
        self._buffer = self._buffer[keep_from:]
        self._buffer_offset += keep_from
        self._resume = until - keep_from

    def _matches(self, pattern: re.Pattern[bytes], until: int) -> Iterator[re.Match[bytes]]:
        for match in pattern.finditer(self._buffer, self._resume):
            if match.start() >= until:
                return
            yield match

    def _take_name(self, match: re.Match[bytes]) -> None:
        name = _decoded_name(match.group())
        if name == _OBJECT_STREAM_NAME:
            self._object_stream_name_at = self._buffer_offset + match.start()
        elif len(match.group()) > _SHORT_TOKEN or self._follows_pdf_syntax(match.start()):
            self.names.add(name)

    def _follows_pdf_syntax(self, position: int) -> bool:
        before = self._buffer[max(0, position - _SYNTAX_BEFORE_SHORT_TOKEN) : position]
        return _PDF_SYNTAX.fullmatch(before) is not None

    def _take_stream_keyword(self, match: re.Match[bytes]) -> None:
        """Note where an object stream's Flate data starts.

        That is at the first `stream` keyword with a zlib header after it that follows an /ObjStm
        name (from the stream's dictionary, so at most _OBJECT_STREAM_REACH before it). Images,
        fonts and attachments are not inflated: no viewer reads objects from them, and their
        bytes would only bring false alarms.
        """
        if self._object_stream_name_at is None:
            return
        if match.start() > 0 and self._buffer[match.start() - 1] not in _DELIMITERS:
            return  # the end of `endstream`, or of some other word
        data_start = self._buffer_offset + match.end()
        if data_start - self._object_stream_name_at > _OBJECT_STREAM_REACH:
            self._object_stream_name_at = None
        elif _looks_like_zlib(self._buffer[match.end() : match.end() + 2]):
            self._object_stream_name_at = None
            if len(self.object_stream_starts) < _MAX_OBJECT_STREAMS:
                self.object_stream_starts.append(data_start)


def _chunks(source: BinaryIO, size: int = _CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk


def _scan_pieces(pieces: Iterable[bytes], *, find_object_streams: bool) -> _TokenScanner:
    scanner = _TokenScanner(find_object_streams=find_object_streams)
    for piece in pieces:
        scanner.feed(piece)
    scanner.finish()
    return scanner


def _kinds_found_in_raw_bytes(source: BinaryIO) -> set[str]:
    """The kinds named by tokens in the bytes, and in the object streams they inflate to."""
    source.seek(0)
    scanner = _scan_pieces(_chunks(source), find_object_streams=True)
    names = scanner.names | _names_in_object_streams(source, scanner.object_stream_starts)
    return _kinds_named(names)


@dataclass
class _InflationBudget:
    """How many more bytes may be inflated, across all of one file's object streams."""

    bytes_left: int


def _names_in_object_streams(source: BinaryIO, starts: Iterable[int]) -> set[str]:
    budget = _InflationBudget(_MAX_INFLATED_BYTES)
    names: set[str] = set()
    for start in starts:
        if budget.bytes_left <= 0:
            break
        names |= _scan_pieces(_inflate(source, start, budget), find_object_streams=False).names
    return names


def _inflate(source: BinaryIO, start: int, budget: _InflationBudget) -> Iterator[bytes]:
    """The zlib data at `start` inflated, in pieces, until it ends, breaks, or the budget is spent.

    Output is asked for at most a chunk (and at most the budget) at a time, so a decompression
    bomb never expands in memory: it only spends the budget.
    """
    source.seek(start)
    inflater = zlib.decompressobj()
    read_size = _FIRST_READ
    compressed = b""
    while budget.bytes_left > 0 and not inflater.eof:
        if not compressed:
            compressed = source.read(read_size)
            read_size = min(read_size * 2, _CHUNK_SIZE)
            if not compressed:
                return
        try:
            piece = inflater.decompress(compressed, min(budget.bytes_left, _CHUNK_SIZE))
        except zlib.error:
            return  # damaged data: what came out before the damage has been scanned
        compressed = inflater.unconsumed_tail
        budget.bytes_left -= len(piece)
        yield piece
