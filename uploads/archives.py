"""The archive step of the upload pipeline: ZIP (and the Office documents that are ZIPs), TAR, gzip.

Nothing is extracted. Every entry is read by streaming decompression in CHUNK_BYTES pieces and its
real expanded bytes are counted as they come; sizes the headers declare only ever refuse early,
never accept (a zip bomb lies). Each limit refuses as soon as it is passed:

- entries (`max_entries`): a ZIP's central directory is walked and counted before zipfile parses
  it or any data is read; a TAR's members as they come. Entries of archives inside count too.
- expanded bytes (`max_expanded_bytes`), across the whole upload: each ZIP entry's decompressed
  bytes, a TAR's bytes as read (its files are stored as they are, plus 512-byte headers), and the
  decompressed stream of a gzip file (a .tar.gz or a single compressed file). An archive inside
  counts once as its outer entry's bytes and again for its own entries, as extracting it would.
- ratio (`max_ratio`): each ZIP entry's expanded bytes to its compressed size; for a gzip file,
  its whole decompressed stream to its compressed size. Up to RATIO_FLOOR_BYTES (64 KiB) expanded
  the ratio is not checked: small files compress oddly (a page of spaces deflates to 20 bytes, a
  TAR of one short file is a 10 KiB record of mostly zeros that deflates 110 times), and so small
  an entry cannot amplify work; every byte still counts toward the expanded total.
- depth (`max_depth`): an entry whose first bytes are a ZIP, TAR or gzip signature is an
  archive inside, inspected in turn, with the same budget, while the depth allows. Office
  documents are ZIPs, so they count as archives inside too (a Word file with a chart holds an
  Excel workbook: it needs a depth of 1). Archives of other kinds (7z, RAR, xz, ...; see
  OTHER_ARCHIVE_SIGNATURES) cannot be checked and are refused at any depth. Signatures, not
  libmagic: asking libmagic costs 0.2 to 2 ms an entry, minutes for 100,000 entries. A ZIP
  inside needs random access, so it is read into memory, up to NESTED_ZIP_MAX_BYTES (three such
  buffers at most, at the deepest nesting); TARs and gzip files inside are streamed.

Entries are refused (`archive_rejected`) for names that leave the archive (`..`, absolute paths,
drive letters, backslash forms of both), control or text-direction characters, names longer than
MAX_NAME_CHARS, and the same name twice (after `\\` -> `/`, `.` and empty parts dropped, NFC):
ZIP tools differ on which copy wins, and a tar appended to with `tar -r` is rare enough to refuse
too. Links (symbolic and hard), device files and FIFOs, sparse TAR members, encrypted ZIP entries
(traditional, strong and AES) and ZIP methods other than stored, deflate and bzip2 are refused.

Damage is refused, never skipped: a ZIP whose local headers disagree with its central directory
(name, method, sizes, checksum), whose entries overlap or leave unlisted bytes between them (where
a streaming reader would find entries the directory hides), whose entry holds more or less data
than declared or fails its CRC; a TAR with a broken header anywhere (tarfile alone would stop
there quietly, while GNU tar skips on to the next header), data after its end marker, or a pax or
GNU long-name header over MAX_TAR_HEADER_BYTES (tarfile reads those whole into memory); a gzip
stream that is truncated or fails its CRC.

The pipeline runs `inspect_archive` in a sandboxed child (uploads.sandbox) for what these bounds
do not foresee.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
import stat
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Protocol

import magic

from policies.filetypes import FILE_TYPES, label_of
from policies.units import format_bytes
from project.errors import UploadRejected
from uploads.names import BIDI_CONTROLS

if TYPE_CHECKING:
    from policies.models import UploadPolicy

CHUNK_BYTES = 64 * 1024
# What the signatures see of each entry to tell an archive inside (libmagic, to name an Office
# document inside: it finds the name of the first part within a few KiB).
HEAD_BYTES = 8 * 1024
RATIO_FLOOR_BYTES = 64 * 1024
NESTED_ZIP_MAX_BYTES = 32 * 1024 * 1024
MAX_NAME_CHARS = 4096  # PATH_MAX on Linux
MAX_TAR_HEADER_BYTES = 1024 * 1024

# Every other container type in policies.filetypes is a ZIP (ZIP itself, the Office documents).
_STREAM_FORMATS = {"application/x-tar": "tar", "application/gzip": "gzip"}
ARCHIVE_FORMATS: dict[str, str] = {
    mime: _STREAM_FORMATS.get(mime, "zip") for mime, t in FILE_TYPES.items() if t.container
}
# Archives that cannot be checked here, by their first bytes (as libmagic knows them): refused
# inside an archive at any depth. ISO images (signature at 32 KiB) are not recognised.
OTHER_ARCHIVE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/x-rar"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"\x04\x22\x4d\x18", "application/x-lz4"),
    (b"LZIP", "application/x-lzip"),
    (b"\x1f\x9d", "application/x-compress"),
    (b"!<arch>\n", "application/x-archive"),
    (b"070701", "application/x-cpio"),
    (b"070702", "application/x-cpio"),
    (b"070707", "application/x-cpio"),
    (b"MSCF\x00\x00\x00\x00", "application/vnd.ms-cab-compressed"),
    (b"xar!", "application/x-xar"),
    (b"\xed\xab\xee\xdb", "application/x-rpm"),
    (b"MSWIM\x00\x00\x00", "application/x-ms-wim"),
)
# "BZh", the block size, then a block's or the end's magic number.
_BZIP2 = re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)")

_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2}
_ZIP_METHOD_NAMES = {
    1: "Shrink",
    6: "Implode",
    9: "Deflate64",
    10: "PKWARE DCL Implode",
    14: "LZMA",
    93: "Zstandard",
    95: "XZ",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
}
_ZIP_ENCRYPTED = 0x1
_ZIP_STRONG_ENCRYPTION = 0x40
_ZIP_DATA_DESCRIPTOR = 0x8
_ZIP_UTF8 = 0x800
_ZIP_MASKED_HEADERS = 0x2000  # central directory encryption
_ZIP_AES = 99
# A data descriptor follows the data when flag 0x8 is set: CRC and sizes, with or without its
# signature, with 4- or 8-byte sizes.
_DESCRIPTOR_SIZES = frozenset({12, 16, 20, 24})
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_CENTRAL_HEADER_SIZE = 46
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_NO_SIZE = 0xFFFFFFFF  # the size is in the zip64 extra field

_TAR_LONG_HEADERS = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
_TAR_DEVICES = {
    tarfile.CHRTYPE: "a device file",
    tarfile.BLKTYPE: "a device file",
    tarfile.FIFOTYPE: "a FIFO (named pipe)",
}

_DRIVE = re.compile(r"[A-Za-z]:")
# What the libraries raise for damaged input (their messages may quote its bytes: never shown).
_DAMAGE = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    OverflowError,  # an offset or size past what a file position can hold
    struct.error,
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_expanded_bytes: int
    max_ratio: int
    max_depth: int

    @classmethod
    def of(cls, policy: UploadPolicy) -> ArchiveLimits:
        """The limits an UploadPolicy sets."""
        return cls(
            max_entries=policy.archive_max_entries,
            max_expanded_bytes=policy.archive_max_expanded_bytes,
            max_ratio=policy.archive_max_ratio,
            max_depth=policy.archive_max_depth,
        )


def inspect_archive(content: IO[bytes], mime: str, limits: ArchiveLimits) -> None:
    """Refuse the archive `content` (of the container type `mime`) unless it passes the rules above.

    Raises UploadRejected("archive_rejected", detail) naming the entry and the limit. `content`
    needs read, seek and tell, and is left at position 0.
    """
    archive_format = ARCHIVE_FORMATS.get(mime)
    if archive_format is None:
        raise ValueError(f"{mime} is not an archive type")
    walk = _Walk(limits)
    try:
        content.seek(0)
        if archive_format == "zip":
            _inspect_zip(content, walk, (), 0)
        elif archive_format == "tar":
            chunks = walk.metered(_file_chunks(content), packed=None, what="The archive")
            _inspect_tar(_ChunkReader(chunks), walk, (), 0)
        else:
            packed = content.seek(0, io.SEEK_END)
            content.seek(0)
            _inspect_gzip(_file_chunks(content), walk, (), 0, packed=packed)
    except _DAMAGE:  # damage a step above did not expect (a crafted offset, say): still damage
        raise _damaged(()) from None
    finally:
        content.seek(0)


# Names and labels


def _shown(name: str, limit: int = 80) -> str:
    text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in name)
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _label(name: str, where: tuple[str, ...]) -> str:
    """'"b.txt" in "inner.zip"': an entry, and the archives inside the upload that hold it."""
    parts = [
        f'"{_shown(part)}"' if part else "the compressed file" for part in (name, *where[::-1])
    ]
    return " in ".join(parts)


def _archive(where: tuple[str, ...]) -> str:
    return f"The archive inside it ({_label(where[-1], where[:-1])})" if where else "The archive"


def _refuse(detail: str) -> UploadRejected:
    return UploadRejected("archive_rejected", detail)


def _damaged(where: tuple[str, ...]) -> UploadRejected:
    return _refuse(f"{_archive(where)} could not be read: it is damaged or truncated.")


def _check_name(name: str, label: str) -> str:
    """The name's duplicate key, once it is known to stay inside the archive."""
    if not name:
        raise _refuse("The archive holds an entry without a name.")
    if len(name) > MAX_NAME_CHARS:
        raise _refuse(f"The entry {label} has a name longer than {MAX_NAME_CHARS:,} characters.")
    if any(unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS for ch in name):
        raise _refuse(f"The entry {label} has control or text-direction characters in its name.")
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        raise _refuse(f"The entry {label} has an absolute path, which points outside the archive.")
    parts = path.split("/")
    # Windows drops a name's trailing dots and spaces, so ".. " is ".." there; "..." goes too.
    if any(part.count(".") >= 2 and not part.strip(". ") for part in parts):
        raise _refuse(f"The entry {label} points outside the archive.")
    return unicodedata.normalize("NFC", "/".join(p for p in parts if p not in ("", ".")))


def _check_unique(key: str, seen: set[str], label: str) -> None:
    if key in seen:
        raise _refuse(
            f"The archive holds {label} twice; tools differ on which copy they keep, so such "
            "archives are not accepted."
        )
    seen.add(key)


# Budget


class _Walk:
    """The limits, and what the upload has used of them so far (at every depth)."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.expanded = 0
        self.reading = "the archive"  # the entry whose bytes are being counted, for details

    def room(self) -> int:
        return self.limits.max_entries - self.entries

    def add_entries(self, count: int, where: tuple[str, ...]) -> None:
        self.entries += count
        if self.entries > self.limits.max_entries:
            inside = " (counting the entries of archives inside it)" if where else ""
            raise _refuse(
                f"The archive holds more than {self.limits.max_entries:,} entries{inside}, the "
                "most this upload accepts."
            )

    def spend(self, size: int) -> None:
        self.expanded += size
        if self.expanded > self.limits.max_expanded_bytes:
            raise _refuse(
                f"The archive expands to more than "
                f"{format_bytes(self.limits.max_expanded_bytes)}, the most this upload accepts "
                f"(passed while reading {self.reading})."
            )

    def check_ratio(self, expanded: int, packed: int, what: str) -> None:
        if expanded > RATIO_FLOOR_BYTES and expanded > packed * self.limits.max_ratio:
            raise self.ratio_refusal(what, f"more than {self.limits.max_ratio:,}")

    def ratio_refusal(self, what: str, times: str) -> UploadRejected:
        return _refuse(
            f"{what} expands {times} times its compressed size; this upload accepts at most "
            f"{self.limits.max_ratio:,} times."
        )

    def metered(self, chunks: Iterable[bytes], *, packed: int | None, what: str) -> Iterator[bytes]:
        """`chunks`, each charged to the budget and (when `packed` is known) ratio-checked."""
        expanded = 0
        for chunk in chunks:
            expanded += len(chunk)
            self.spend(len(chunk))
            if packed is not None:
                self.check_ratio(expanded, packed, what)
            yield chunk


# Streams


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for tarfile and gzip)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _file_chunks(content: IO[bytes]) -> Iterator[bytes]:
    return iter(partial(content.read, CHUNK_BYTES), b"")


def _peek(chunks: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first HEAD_BYTES (or fewer), and every chunk again, those included."""
    chunks = iter(chunks)
    taken: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        chunk = next(chunks, None)
        if chunk is None:
            break
        taken.append(chunk)
        size += len(chunk)
    return b"".join(taken)[:HEAD_BYTES], chain(taken, chunks)


def _drain(chunks: Iterable[bytes]) -> None:
    for _ in chunks:
        pass


# Entries and archives inside


def _nested_format(head: bytes) -> tuple[str, str] | None:
    """(format, MIME type) of an entry that is itself an archive, from its first bytes."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        mime = magic.from_buffer(head, mime=True)  # only to name an Office document as such
        return "zip", mime if ARCHIVE_FORMATS.get(mime) == "zip" else "application/zip"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip", "application/gzip"
    if head[257:262] == b"ustar" or _is_old_tar_header(head):
        return "tar", "application/x-tar"
    for signature, mime in OTHER_ARCHIVE_SIGNATURES:
        if head.startswith(signature):
            return "other", mime
    if _BZIP2.match(head):
        return "other", "application/x-bzip2"
    return None


def _is_old_tar_header(head: bytes) -> bool:
    """A pre-POSIX TAR header (no "ustar" magic): its checksum field matches its bytes."""
    if len(head) < tarfile.BLOCKSIZE or not head[0]:
        return False
    field = head[148:156].strip(b"\0 ")
    try:
        stored = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    signed = sum(b - 256 if b > 127 else b for b in (*head[:148], *head[156:512])) + 8 * 32
    return stored in (unsigned, signed)


def _entry(
    chunks: Iterable[bytes],
    walk: _Walk,
    where: tuple[str, ...],
    depth: int,
    *,
    name: str,
    size: int,
) -> None:
    """Read one entry's content to its end, inspecting it in turn when it is an archive.

    `size` is the entry's size as its archive states it, the denominator of a gzip inside's
    ratio (for a gzip in a gzip, the outer's compressed size: stricter, never looser).
    """
    reading = walk.reading
    head, chunks = _peek(chunks)
    found = _nested_format(head)
    if found is None:
        _drain(chunks)
        return
    archive_format, mime = found
    label = f"{_label(name, where)}, {label_of(mime)}"
    limit = walk.limits.max_depth
    if depth + 1 > limit:
        if limit == 0:
            raise _refuse(
                f"The archive holds another archive ({label}); this upload does not accept "
                "archives inside archives."
            )
        levels = "level" if limit == 1 else "levels"
        raise _refuse(
            f"The archive holds archives nested more than {limit} {levels} deep ({label}); "
            f"this upload accepts at most {limit}."
        )
    inner = (*where, name)
    if archive_format == "other":
        raise _refuse(
            f"The archive holds another archive ({label}) whose contents cannot be checked, so "
            "it is not accepted."
        )
    if archive_format == "zip":
        _inspect_zip(_buffered(chunks, label), walk, inner, depth + 1)
    elif archive_format == "tar":
        _inspect_tar(_ChunkReader(chunks), walk, inner, depth + 1)
    else:
        _inspect_gzip(chunks, walk, inner, depth + 1, packed=size)
    walk.reading = reading
    _drain(chunks)


def _buffered(chunks: Iterable[bytes], label: str) -> io.BytesIO:
    """A ZIP inside, in memory (zipfile needs to seek), up to NESTED_ZIP_MAX_BYTES."""
    buffer = io.BytesIO()
    for chunk in chunks:
        buffer.write(chunk)
        if buffer.tell() > NESTED_ZIP_MAX_BYTES:
            raise _refuse(
                f"The archive holds a ZIP archive ({label}) larger than "
                f"{format_bytes(NESTED_ZIP_MAX_BYTES)}, the most that can be checked inside "
                "another archive."
            )
    buffer.seek(0)
    return buffer


# ZIP


class _Decompressor(Protocol):
    finished: bool

    def feed(self, data: bytes) -> Iterator[bytes]: ...


class _Stored:
    finished = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield data


class _Inflate:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._after_end = False

    @property
    def finished(self) -> bool:
        """The stream ended, with no bytes after it (where a streaming reader sees more)."""
        return self._zlib.eof and not self._after_end and not self._zlib.unused_data

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._after_end |= self._zlib.eof and bool(data)
        while not self._zlib.eof:
            out = self._zlib.decompress(data, CHUNK_BYTES)
            if not out and (not data or data == self._zlib.unconsumed_tail):
                return  # needs more input (bytes after the stream's end are left alone)
            data = self._zlib.unconsumed_tail
            if out:
                yield out


class _Bunzip:
    def __init__(self) -> None:
        self._bz2 = bz2.BZ2Decompressor()
        self._after_end = False

    @property
    def finished(self) -> bool:
        return self._bz2.eof and not self._after_end and not self._bz2.unused_data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._bz2.eof:
            self._after_end |= bool(data)
            return
        yield self._bz2.decompress(data, CHUNK_BYTES)
        while not self._bz2.eof and not self._bz2.needs_input:
            yield self._bz2.decompress(b"", CHUNK_BYTES)


_DECOMPRESSORS: dict[int, Callable[[], _Decompressor]] = {
    zipfile.ZIP_STORED: _Stored,
    zipfile.ZIP_DEFLATED: _Inflate,
    zipfile.ZIP_BZIP2: _Bunzip,
}


def _inspect_zip(content: IO[bytes], walk: _Walk, where: tuple[str, ...], depth: int) -> None:
    try:
        start, length = _zip_directory(content, where)
        count = _count_directory(content, start, length, walk.room() + 1, where)
        walk.add_entries(count, where)
        with zipfile.ZipFile(content) as archive:
            infos = archive.infolist()
            if len(infos) != count or archive.start_dir != start:
                raise _damaged(where)
    except _DAMAGE:
        raise _damaged(where) from None
    _check_zip_entries(infos, walk, where)
    following = _following_offsets(infos, start, where)
    for info in infos:
        label = _label(info.orig_filename, where)
        data_start = _local_header(content, info, label, where)
        gap = following[info.header_offset] - (data_start + info.compress_size)
        if gap not in (_DESCRIPTOR_SIZES if info.flag_bits & _ZIP_DATA_DESCRIPTOR else {0}):
            raise _refuse(
                f"{_archive(where)} is damaged: around the entry {label} its entries overlap or "
                "leave bytes its directory does not list, so it is not accepted."
            )
        chunks = _zip_entry_chunks(content, info, data_start, walk, label, where)
        walk.reading = label
        _entry(chunks, walk, where, depth, name=info.orig_filename, size=info.file_size)


def _zip_directory(content: IO[bytes], where: tuple[str, ...]) -> tuple[int, int]:
    """Where the central directory starts, and its length, found as zipfile finds them."""
    size = content.seek(0, io.SEEK_END)
    tail_start = max(size - _EOCD.size - 0xFFFF, 0)
    content.seek(tail_start)
    tail = content.read()
    if tail[-_EOCD.size :].startswith(b"PK\x05\x06") and tail.endswith(b"\0\0"):
        at = len(tail) - _EOCD.size  # no comment
    else:
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _damaged(where)
    location = tail_start + at
    length = _EOCD.unpack_from(tail, at)[5]
    records64 = _EOCD64_LOCATOR.size + _EOCD64.size
    if location >= records64:
        content.seek(location - records64)
        records = content.read(records64)
        locator = _EOCD64_LOCATOR.unpack_from(records, _EOCD64.size)
        if locator[0] == b"PK\x06\x07":
            if locator[1] != 0 or locator[3] > 1:
                raise _damaged(where)  # spans several disks
            record = _EOCD64.unpack_from(records)
            if record[0] == b"PK\x06\x06":
                length, location = record[8], location - records64
    if location - length < 0:
        raise _damaged(where)
    return location - length, length


def _count_directory(
    content: IO[bytes], start: int, length: int, stop: int, where: tuple[str, ...]
) -> int:
    """The central directory's records, counted by walking their headers (up to `stop`)."""
    count = position = 0
    content.seek(start)
    while position < length and count < stop:
        header = content.read(_CENTRAL_HEADER_SIZE)
        if len(header) < _CENTRAL_HEADER_SIZE or not header.startswith(b"PK\x01\x02"):
            raise _damaged(where)
        skipped = sum(struct.unpack_from("<3H", header, 28))
        content.seek(skipped, io.SEEK_CUR)
        position += _CENTRAL_HEADER_SIZE + skipped
        count += 1
    return count


def _check_zip_entries(infos: list[zipfile.ZipInfo], walk: _Walk, where: tuple[str, ...]) -> None:
    """What the central directory shows, for every entry before any is read."""
    seen: set[str] = set()
    declared = 0
    for info in infos:
        name = info.orig_filename  # zipfile's `filename` stops at a NUL
        label = _label(name, where)
        _check_unique(_check_name(name, label), seen, label)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise _link(label)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(
                f"The entry {label} is a device file, FIFO or socket, which archives uploaded "
                "here may not hold."
            )
        encrypted = _ZIP_ENCRYPTED | _ZIP_STRONG_ENCRYPTION | _ZIP_MASKED_HEADERS
        if info.flag_bits & encrypted or info.compress_type == _ZIP_AES:
            raise _encrypted(label)
        if info.compress_type not in _ZIP_METHODS:
            method = _ZIP_METHOD_NAMES.get(info.compress_type, "unknown")
            raise _refuse(
                f"The entry {label} uses a compression method ({method}, "
                f"{info.compress_type}) that cannot be checked; this upload accepts entries "
                "stored, deflated or compressed with bzip2."
            )
        if (
            info.file_size > RATIO_FLOOR_BYTES
            and info.file_size > info.compress_size * walk.limits.max_ratio
        ):
            times = f"{info.file_size // max(info.compress_size, 1):,}"
            raise walk.ratio_refusal(f"The entry {label}", times)
        declared += info.file_size
    if walk.expanded + declared > walk.limits.max_expanded_bytes:
        raise _refuse(
            f"The archive's entries add up to {format_bytes(walk.expanded + declared)} once "
            f"expanded; this upload accepts at most "
            f"{format_bytes(walk.limits.max_expanded_bytes)}."
        )


def _link(label: str) -> UploadRejected:
    return _refuse(
        f"The entry {label} is a link; links in archives can point outside them, so they are "
        "not accepted."
    )


def _encrypted(label: str) -> UploadRejected:
    return _refuse(
        f"The entry {label} is encrypted; encrypted archives cannot be checked, so they are not "
        "accepted."
    )


def _following_offsets(
    infos: list[zipfile.ZipInfo], directory_start: int, where: tuple[str, ...]
) -> dict[int, int]:
    """Each entry's offset -> where the next entry (or the directory) starts.

    Entries must tile the archive from its first byte: an overlap is how the smallest zip bombs
    reuse one compressed kernel, and unlisted bytes are where a streaming reader finds entries
    the directory does not show.
    """
    offsets = sorted(info.header_offset for info in infos)
    if not offsets:
        return {}
    if len(set(offsets)) != len(offsets) or offsets[0] != 0:
        raise _refuse(
            f"{_archive(where)} is damaged: its entries overlap or leave bytes its directory "
            "does not list, so it is not accepted."
        )
    return dict(zip(offsets, [*offsets[1:], directory_start], strict=True))


def _local_header(
    content: IO[bytes], info: zipfile.ZipInfo, label: str, where: tuple[str, ...]
) -> int:
    """Where the entry's data starts, once its local header agrees with the directory."""
    content.seek(info.header_offset)
    header = content.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise _damaged(where)
    signature, _, flags, method, _, _, crc, packed, size, name_length, extra_length = (
        _LOCAL_HEADER.unpack(header)
    )
    if flags & (_ZIP_ENCRYPTED | _ZIP_STRONG_ENCRYPTION) or method == _ZIP_AES:
        raise _encrypted(label)
    encoding = "utf-8" if info.flag_bits & _ZIP_UTF8 else "cp437"
    agrees = (
        signature == b"PK\x03\x04"
        and method == info.compress_type
        and content.read(name_length) == info.orig_filename.encode(encoding)
        and (
            flags & _ZIP_DATA_DESCRIPTOR
            or (
                crc == info.CRC
                and packed in (_NO_SIZE, info.compress_size)
                and size in (_NO_SIZE, info.file_size)
            )
        )
    )
    if not agrees:
        raise _refuse(
            f"{_archive(where)} is damaged: its directory and the entry {label} itself disagree "
            "(name, sizes, checksum or compression), so it is not accepted."
        )
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _zip_entry_chunks(
    content: IO[bytes],
    info: zipfile.ZipInfo,
    position: int,
    walk: _Walk,
    label: str,
    where: tuple[str, ...],
) -> Iterator[bytes]:
    """The entry's real expanded bytes, counted and checked as they come, then its CRC."""
    decompressor: _Decompressor = _DECOMPRESSORS[info.compress_type]()
    left = info.compress_size
    expanded = crc = 0
    try:
        while left > 0:
            content.seek(position)
            data = content.read(min(CHUNK_BYTES, left))
            if not data:
                raise _damaged(where)
            position += len(data)
            left -= len(data)
            for out in decompressor.feed(data):
                expanded += len(out)
                if expanded > info.file_size:
                    raise _refuse(
                        f"The entry {label} holds more data than the archive's directory says "
                        f"({format_bytes(info.file_size)}); the archive is damaged, so it is "
                        "not accepted."
                    )
                walk.spend(len(out))
                walk.check_ratio(expanded, info.compress_size, f"The entry {label}")
                crc = zlib.crc32(out, crc)
                yield out
    except _DAMAGE:
        raise _damaged(where) from None
    if not decompressor.finished or expanded != info.file_size or crc != info.CRC:
        raise _refuse(
            f"The entry {label} does not match its size or checksum; the archive is damaged, so "
            "it is not accepted."
        )


# TAR


class _BrokenTar(Exception):
    """A header tarfile would take for the archive's end (or skip), or one too large to read."""

    def __init__(self, oversize: int = 0) -> None:
        super().__init__()
        self.oversize = oversize


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile's header reading, refusing what it would pass over quietly.

    tarfile ends the archive at a damaged header (GNU tar skips to the next one and goes on), and
    reads pax and GNU long-name headers whole into memory.
    """

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        try:
            obj = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError):
            raise _BrokenTar from None
        if obj.type in _TAR_LONG_HEADERS and obj.size > MAX_TAR_HEADER_BYTES:
            raise _BrokenTar(oversize=obj.size)
        obj.offset = tarfile_.fileobj.tell() - tarfile.BLOCKSIZE
        return obj._proc_member(tarfile_)  # what TarInfo.fromtarfile does next


def _inspect_tar(stream: IO[bytes], walk: _Walk, where: tuple[str, ...], depth: int) -> None:
    """The TAR read from `stream` (its bytes already charged to the budget by the caller)."""
    seen: set[str] = set()
    try:
        with tarfile.open(
            fileobj=stream, mode="r|", tarinfo=_StrictTarInfo, bufsize=CHUNK_BYTES
        ) as archive:
            while (member := archive.next()) is not None:
                archive.members.clear()  # streamed: nothing looks back, so keep none
                walk.add_entries(1, where)
                label = walk.reading = _label(member.name, where)
                _check_unique(_check_name(member.name, label), seen, label)
                _check_tar_type(member, label)
                if member.isreg():
                    content = archive.extractfile(member)
                    assert content is not None  # a regular file's content
                    chunks = iter(partial(content.read, CHUNK_BYTES), b"")
                    _entry(chunks, walk, where, depth, name=member.name, size=member.size)
            # After the end marker, only the zeros that pad the last record.
            while block := archive.fileobj.read(CHUNK_BYTES):
                if block.strip(b"\0"):
                    raise _refuse(
                        f"{_archive(where)} is damaged: something follows its end marker, so "
                        "it is not accepted."
                    )
    except _BrokenTar as broken:
        if broken.oversize:
            raise _refuse(
                f"{_archive(where)} holds an extended header of "
                f"{format_bytes(broken.oversize)}; at most "
                f"{format_bytes(MAX_TAR_HEADER_BYTES)} can be checked."
            ) from None
        raise _damaged(where) from None
    except _DAMAGE:
        raise _damaged(where) from None


def _check_tar_type(member: tarfile.TarInfo, label: str) -> None:
    if member.issym() or member.islnk():
        raise _link(label)
    if member.type in _TAR_DEVICES:
        raise _refuse(
            f"The entry {label} is {_TAR_DEVICES[member.type]}, which archives uploaded here may "
            "not hold."
        )
    if member.issparse():
        raise _refuse(f"The entry {label} is a sparse file, which cannot be checked.")
    if not (member.isreg() or member.isdir()):
        kind = _shown(member.type.decode("latin-1"))
        raise _refuse(f"The entry {label} is of a kind ({kind!r}) that cannot be checked.")


# gzip


def _inspect_gzip(
    chunks: Iterable[bytes], walk: _Walk, where: tuple[str, ...], depth: int, *, packed: int
) -> None:
    """A gzip file: a TAR (same level) or one compressed file (one entry)."""
    head, chunks = _peek(chunks)
    name = _gzip_name(head)
    what = (
        f"The compressed content of {_label(where[-1], where[:-1])}"
        if where
        else "The archive's compressed content"
    )
    stream = gzip.GzipFile(fileobj=_ChunkReader(chunks), mode="rb")
    expanded = walk.metered(_gunzipped(stream, where), packed=packed, what=what)
    head, expanded = _peek(expanded)
    found = _nested_format(head)
    if found is not None and found[0] == "tar":
        _inspect_tar(_ChunkReader(expanded), walk, where, depth)
        _drain(expanded)
        return
    walk.add_entries(1, where)
    walk.reading = _label(name, where)
    _entry(expanded, walk, where, depth, name=name, size=packed)


def _gunzipped(stream: IO[bytes], where: tuple[str, ...]) -> Iterator[bytes]:
    try:
        yield from iter(partial(stream.read, CHUNK_BYTES), b"")
    except _DAMAGE:
        raise _damaged(where) from None


def _gzip_name(head: bytes) -> str:
    """The original name a gzip header may carry (for details only), or ""."""
    flags = head[3] if len(head) >= 10 else 0
    if not flags & 0x08:
        return ""
    position = 10
    if flags & 0x04:
        position += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", position)
    return head[position:end].decode("latin-1") if end >= 0 else ""
