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

A small PDF can hold a great deal of work (object streams that inflate to tens of MiB each, which
pypdf then reads a byte at a time in Python), so both scans share bounds, and a file that needs
more than they allow is "unparseable" too:

- a budget of decoded bytes (_MAX_DECODED_BYTES, 64 MiB) across both scans: every object
  stream pypdf decodes and every byte the raw scan inflates is charged to it, and no single
  stream pypdf decodes (object stream or cross-reference stream) may pass
  _MAX_OBJECT_STREAM_BYTES (pypdf's own limit, lowered for the walk). A real file holds a few
  MiB of object streams; since both scans read them, a file whose object streams decode to
  more than about half the budget (32 MiB) is refused;
- a time budget (`time_budget`, TIME_BUDGET_SECONDS unless the caller says), checked between
  objects and between the raw scan's pieces. One object is not interrupted: its cost is bounded
  by the size of the stream it comes from;
- memory: pypdf keeps every object it reads; the walk visits the objects of one object stream
  together and then drops them and the stream's decoded data from pypdf's cache, so at most one
  decoded object stream is held at a time.

The pipeline also runs `inspect_pdf` in a child process with CPU and memory limits
(uploads.sandbox), for whatever these bounds do not foresee.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import re
import time
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
)

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
    "The PDF could not be checked for active content because it is damaged, encrypted or too "
    "large to check; this upload does not accept it."
)

# Bounds on the work one file may cause (see the module docstring).
_MAX_DECODED_BYTES = 64 << 20  # decoded by both scans together
# One stream, as pypdf decodes it. pypdf parses an object a byte at a time, up to about half a
# second a MiB (a hex string), so this also bounds what one object costs between clock checks.
_MAX_OBJECT_STREAM_BYTES = 4 << 20
# Objects one object stream may index (real producers put tens to hundreds in each).
_MAX_OBJECTS_PER_STREAM = 100_000
# pypdf walks about 15,000 objects a second; the pipeline passes its own (uploads.inspect).
TIME_BUDGET_SECONDS = 6.0
# pypdf's limits on what one stream decodes to, each set to what the budget allows.
_PYPDF_OUTPUT_LIMITS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "jbig2_maximum_output_length",
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
# Object streams the raw scan inflates at most (more is refused, as over the budget).
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


class _BudgetSpent(Exception):
    """The file needs more decoding or more time than one PDF is allowed."""


@dataclass
class _Budget:
    """What one file may still cost: decoded bytes, and time until `deadline` (monotonic)."""

    bytes_left: int = _MAX_DECODED_BYTES
    deadline: float = math.inf
    # Object streams whose decoded size is already charged (pypdf decodes each once).
    charged: set[int] = field(default_factory=set)

    @classmethod
    def lasting(cls, seconds: float) -> _Budget:
        return cls(deadline=time.monotonic() + seconds)

    def spend(self, decoded: int) -> None:
        self.bytes_left -= decoded
        if self.bytes_left < 0:
            raise _BudgetSpent(f"more than {_MAX_DECODED_BYTES:,} bytes to decode")

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _BudgetSpent("out of time")


def find_active_content(source: BinaryIO, *, time_budget: float = TIME_BUDGET_SECONDS) -> set[str]:
    """Which ACTIVE_KINDS the PDF holds, found by pypdf AND by a raw scan of the bytes.

    The set may also hold "unparseable" when pypdf could not open or walk the file, or either
    scan ran over the budgets (decoded bytes, `time_budget` seconds). `source` is read from its
    start and left at position 0.
    """
    budget = _Budget.lasting(time_budget)
    try:
        source.seek(0)
        try:
            kinds = _kinds_found_by_pypdf(source, budget)
        except _BudgetSpent as spent:
            logger.info("PDF over the budget of the active-content check: %s", spent)
            kinds = {UNPARSEABLE}
        except Exception as error:  # pypdf raises many types on damaged input; all mean "unchecked"
            logger.info("PDF not parseable for the active-content check: %.200r", error)
            kinds = {UNPARSEABLE}
        return kinds | _kinds_found_in_raw_bytes(source, budget)
    finally:
        source.seek(0)


def inspect_pdf(
    source: BinaryIO, *, refuse: Iterable[str], time_budget: float = TIME_BUDGET_SECONDS
) -> None:
    """Raise UploadRejected("active_content", detail) if the PDF holds any kind in `refuse`.

    An unparseable PDF (or one over the budgets) is refused whatever `refuse` holds (fail
    closed). When refused kinds were found, the detail names them, even in a damaged file.
    `source` is left at position 0.
    """
    refused = frozenset(refuse)
    unknown = refused - set(ACTIVE_KINDS)
    if unknown:
        raise ValueError(f"unknown PDF content kinds {sorted(unknown)}; known: {ACTIVE_KINDS}")
    found = find_active_content(source, time_budget=time_budget)
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


def _kinds_found_by_pypdf(source: BinaryIO, budget: _Budget | None = None) -> set[str]:
    """The kinds named in the trailer and in every object pypdf lists; raises if it cannot read.

    Encrypted files are opened with the empty user password (what a viewer tries first); any
    other password makes the file unreadable here, so it raises. Raises _BudgetSpent past the
    budget.
    """
    budget = budget if budget is not None else _Budget()
    with _decoding_limit(budget):  # what pypdf decodes while opening, or on its own initiative
        reader = PdfReader(source, strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ValueError("the PDF is encrypted with a password")
        names = set(_names_in(reader.trailer))
        plain, packed = _objects_by_stream(reader)
        for stream_number in packed:
            _charge_if_decoded(reader, stream_number, budget)
        for reference in plain:
            budget.check_time()
            obj = reader.get_object(reference)
            names.update(_names_in(obj))
            _charge_length_lookup(reader, obj, budget)
            _forget(reader, reference, obj)
    for stream_number, members in packed.items():
        names |= _names_in_object_stream(reader, stream_number, members, budget)
    return _kinds_named(name[1:] for name in names)


def _objects_by_stream(
    reader: PdfReader,
) -> tuple[list[IndirectObject], dict[int, list[tuple[int, int]]]]:
    """Every object the file lists, reachable from the catalog or not (orphans hide things too):
    those stored plainly, and those in object streams (object number, index) by stream number.
    """
    packed: dict[int, list[tuple[int, int]]] = {}
    for number, (stream_number, index) in list(reader.xref_objStm.items()):
        packed.setdefault(stream_number, []).append((number, index))
    plain = [
        IndirectObject(number, generation, reader)
        for generation, entries in list(reader.xref.items())
        for number in list(entries)
        # pypdf reads generation 0 of a number listed in an object stream from that stream
        if not (generation == 0 and number in reader.xref_objStm)
    ]
    return plain, packed


@contextlib.contextmanager
def _decoding_limit(budget: _Budget) -> Iterator[None]:
    """pypdf decodes no stream to more than one object stream may hold, or the budget has left."""
    limit = min(_MAX_OBJECT_STREAM_BYTES, budget.bytes_left)
    if limit <= 0:  # 0 would mean "no limit" to pypdf
        raise _BudgetSpent("the decoding budget is spent")
    with apply_configuration(**dict.fromkeys(_PYPDF_OUTPUT_LIMITS, limit)):
        yield


def _names_in_object_stream(
    reader: PdfReader, stream_number: int, members: list[tuple[int, int]], budget: _Budget
) -> set[str]:
    """The names in the objects of one object stream, decoded once, then dropped from the cache."""
    budget.check_time()
    names: set[str] = set()
    stream: object = None
    try:
        with _decoding_limit(budget):  # reading the stream may resolve its /Length elsewhere
            stream = reader.get_object(IndirectObject(stream_number, 0, reader))
            if stream_number not in budget.charged and isinstance(stream, StreamObject):
                decoded = stream.get_data()
                budget.charged.add(stream_number)
                budget.spend(len(decoded))
        _read_no_further_than(stream, max(index for _, index in members))
        with _decoding_limit(budget):
            for number, _ in members:
                budget.check_time()
                names.update(_names_in(reader.get_object(IndirectObject(number, 0, reader))))
    finally:
        for number, _ in members:
            reader.resolved_objects.pop((0, number), None)
        reader.resolved_objects.pop((0, stream_number), None)
        if hasattr(stream, "decoded_self"):
            stream.decoded_self = None
    return names


def _read_no_further_than(stream: object, last_index: int) -> None:
    """Have pypdf read an object stream's index only as far as the cross-reference table points.

    pypdf reads all /N entries of the index, and every object they list, when the first object
    is asked for; a hostile /N makes that millions. No viewer finds an object the cross-reference
    table does not point to, so nothing past the last index it names is read; a table pointing
    past _MAX_OBJECTS_PER_STREAM is over the budget.
    """
    if last_index >= _MAX_OBJECTS_PER_STREAM:
        raise _BudgetSpent(
            f"an object stream indexes more than {_MAX_OBJECTS_PER_STREAM:,} objects"
        )
    if not isinstance(stream, StreamObject):
        return
    declared = dict.get(stream, "/N")
    if isinstance(declared, int) and declared > last_index + 1:
        stream[NameObject("/N")] = NumberObject(last_index + 1)


def _charge_if_decoded(reader: PdfReader, stream_number: int, budget: _Budget) -> None:
    """Charge an object stream pypdf has decoded (and cached) on its own, once."""
    if stream_number in budget.charged:
        return
    decoded = getattr(reader.cache_get_indirect_object(0, stream_number), "decoded_self", None)
    if decoded is not None:
        budget.charged.add(stream_number)
        budget.spend(len(decoded.get_data()))


def _charge_length_lookup(reader: PdfReader, obj: object, budget: _Budget) -> None:
    """A stream whose /Length is an object inside an object stream made pypdf decode that one."""
    if not isinstance(obj, StreamObject):
        return
    length = dict.get(obj, "/Length")
    if isinstance(length, IndirectObject) and length.idnum in reader.xref_objStm:
        _charge_if_decoded(reader, reader.xref_objStm[length.idnum][0], budget)


def _forget(reader: PdfReader, reference: IndirectObject, obj: object) -> None:
    """Drop a walked object (a stream's data can be hundreds of MiB) from pypdf's cache.

    Object streams stay cached until their objects are walked: pypdf reads them from the cached
    copy.
    """
    if not (isinstance(obj, StreamObject) and dict.get(obj, "/Type") == "/ObjStm"):
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
        self.too_many_object_streams = False
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
            else:
                self.too_many_object_streams = True


def _chunks(source: BinaryIO, budget: _Budget, size: int = _CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk
        budget.check_time()


def _scan_pieces(scanner: _TokenScanner, pieces: Iterable[bytes]) -> None:
    """Feed `scanner` every piece; what it found stays in it if a piece raises."""
    try:
        for piece in pieces:
            scanner.feed(piece)
    finally:
        scanner.finish()


def _kinds_found_in_raw_bytes(source: BinaryIO, budget: _Budget | None = None) -> set[str]:
    """The kinds named by tokens in the bytes, and in the object streams they inflate to.

    With "unparseable" when the budget ran out (what was found until then is still named).
    """
    budget = budget if budget is not None else _Budget()
    names: set[str] = set()
    try:
        source.seek(0)
        scanner = _TokenScanner(find_object_streams=True)
        try:
            _scan_pieces(scanner, _chunks(source, budget))
        finally:
            names |= scanner.names
        if scanner.too_many_object_streams:
            raise _BudgetSpent(f"more than {_MAX_OBJECT_STREAMS:,} object streams")
        for start in scanner.object_stream_starts:
            inner = _TokenScanner(find_object_streams=False)
            try:
                _scan_pieces(inner, _inflate(source, start, budget))
            finally:
                names |= inner.names
    except _BudgetSpent as spent:
        logger.info("PDF over the budget of the raw active-content scan: %s", spent)
        return _kinds_named(names) | {UNPARSEABLE}
    return _kinds_named(names)


def _inflate(source: BinaryIO, start: int, budget: _Budget) -> Iterator[bytes]:
    """The zlib data at `start` inflated, in pieces, until it ends or breaks.

    Output is asked for at most a chunk (and at most one byte past the budget) at a time, so a
    decompression bomb never expands in memory: it spends the budget, and raises _BudgetSpent
    when it would pass it.
    """
    source.seek(start)
    inflater = zlib.decompressobj()
    read_size = _FIRST_READ
    compressed = b""
    while not inflater.eof:
        if not compressed:
            compressed = source.read(read_size)
            read_size = min(read_size * 2, _CHUNK_SIZE)
            if not compressed:
                return
        try:
            piece = inflater.decompress(compressed, min(max(budget.bytes_left, 0) + 1, _CHUNK_SIZE))
        except zlib.error:
            return  # damaged data: what came out before the damage has been scanned
        compressed = inflater.unconsumed_tail
        if len(piece) > budget.bytes_left:
            yield piece[: max(budget.bytes_left, 0)]  # what the budget allows is scanned
        budget.spend(len(piece))  # raises when over
        budget.check_time()
        yield piece
