"""Benign and hostile ZIP, TAR and gzip bytes, built in memory (no downloads, no files kept).

zipfile and tarfile write the well-formed ones; the hostile ones are those patched by hand where
the libraries refuse to write them: encrypted flags, lying sizes, names with NUL, entries that
overlap or that the central directory hides. Bombs are compressed a MiB at a time from a stream
of zeros, so building one never holds its expanded size in memory.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable

MIB = 1024 * 1024
_ZEROS = bytes(MIB)
TEXT = b"Quarterly figures, nothing to see here.\n" * 20

# Field offsets in a local header and a central directory record.
_LOCAL = {"flags": 6, "method": 8, "crc": 14, "compress_size": 18, "file_size": 22}
_CENTRAL = {
    "flags": 8,
    "method": 10,
    "crc": 16,
    "compress_size": 20,
    "file_size": 24,
    "header_offset": 42,
}
_WIDTH = {"flags": 2, "method": 2}  # the rest are 4 bytes


# ZIP


def zip_of(
    entries: Iterable[tuple[str, bytes]] | dict[str, bytes],
    *,
    method: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    items = entries.items() if isinstance(entries, dict) else entries
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names
        with zipfile.ZipFile(out, "w", compression=method) as archive:
            for name, data in items:
                archive.writestr(zipfile.ZipInfo(name, (2024, 5, 1, 12, 0, 0)), data, method)
    return out.getvalue()


def normal_zip() -> bytes:
    return zip_of(
        [
            ("report/", b""),
            ("report/summary.txt", TEXT),
            ("report/figures.csv", b"quarter,revenue\nQ1,100\nQ2,120\n"),
            ("readme.md", b"# Report\n"),
        ]
    )


def zip_bomb(mib: int = 50, name: str = "bomb.txt") -> bytes:
    """`mib` MiB of zeros deflated (about 1,000 times smaller), streamed into the archive."""
    out = io.BytesIO()
    info = zipfile.ZipInfo(name, (2024, 5, 1, 12, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(info, "w") as entry,
    ):
        for _ in range(mib):
            entry.write(_ZEROS)
    return out.getvalue()


def lying_zip(declared: int = 1000, *, local_too: bool = True) -> bytes:
    """A 50 MiB bomb whose headers say its one entry expands to `declared` bytes."""
    where = ("local", "central") if local_too else ("central",)
    return patch_zip(zip_bomb(), "bomb.txt", where=where, file_size=declared)


def zip_with_entries(count: int, *, garbage_data: bool = False) -> bytes:
    data = zip_of([(f"file{i:05}.txt", b"x") for i in range(count)], method=zipfile.ZIP_STORED)
    if garbage_data:  # every entry's data damaged: only the directory is sound
        data = data.replace(b"x", b"\xff")
    return data


def zip_with_name(name: str) -> bytes:
    """One entry under `name`, NUL and all (zipfile would cut a name at its NUL when writing)."""
    placeholder = "P" * len(name.encode("utf-8"))
    data = zip_of([(placeholder, TEXT)])
    if not name.isascii():  # flag 0x800: the name is UTF-8 (zipfile sets it for its own names)
        data = patch_zip(data, placeholder, flags=_flags(data, placeholder) | 0x800)
    return data.replace(placeholder.encode(), name.encode("utf-8"))


def zip_with_mode(mode: int, name: str = "link", data: bytes = b"/etc/passwd") -> bytes:
    """One entry whose Unix mode (in external_attr's high half) is `mode`, e.g. a symlink."""
    info = zipfile.ZipInfo(name, (2024, 5, 1, 12, 0, 0))
    info.create_system = 3  # Unix
    info.external_attr = mode << 16
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(info, data)
    return out.getvalue()


def encrypted_zip(where: tuple[str, ...] = ("local", "central")) -> bytes:
    """Flag bit 0x1 (traditional encryption) set by hand: zipfile cannot write encrypted zips."""
    data = zip_of([("secret.txt", TEXT)])
    return patch_zip(data, "secret.txt", where=where, flags=_flags(data, "secret.txt") | 0x1)


def aes_zip() -> bytes:
    """Compression method 99: how WinZip marks an AES-encrypted entry."""
    return patch_zip(zip_of([("secret.txt", TEXT)]), "secret.txt", method=99)


def crc_mismatch_zip() -> bytes:
    data = zip_of([("a.txt", TEXT)])
    return patch_zip(data, "a.txt", crc=zlib.crc32(b"something else"))


def overlapping_zip() -> bytes:
    """Two directory entries sharing one local header and its data (the smallest bombs' trick)."""
    data = zip_of([("a.txt", TEXT), ("b.txt", TEXT)])
    return patch_zip(data, "b.txt", where=("central",), header_offset=0)


def zip_hiding_an_entry() -> bytes:
    """Two local entries, a central directory listing only the first: a streaming reader (Java's
    ZipInputStream, some scanners) finds the second, "../evil.sh"; zipfile does not."""
    data = zip_of([("a.txt", TEXT), ("../evil.sh", b"#!/bin/sh\nrm -rf ~\n")])
    records = _central_records(data)
    start = min(offset for offset, _, _ in records.values())
    offset, size, _ = records["a.txt"]
    directory = data[offset : offset + size]
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), start, 0)
    return data[:start] + directory + eocd


def zip_with_trailing_bytes_in_entry() -> bytes:
    """A deflate stream followed by bytes inside its own compressed size (hidden from zipfile)."""
    data = zip_of([("a.txt", TEXT)])
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("a.txt")
    hidden = b"PK\x03\x04hidden"
    data_start = info.header_offset + 30 + len(b"a.txt")
    data_end = data_start + info.compress_size
    patched = data[:data_end] + hidden + data[data_end:]
    # Everything after the entry moved: the directory's offset in the end record must follow.
    directory_at = struct.unpack_from("<L", patched, len(patched) - 6)[0] + len(hidden)
    patched = patched[:-6] + struct.pack("<L", directory_at) + patched[-2:]
    return patch_zip(patched, "a.txt", compress_size=info.compress_size + len(hidden))


def nested_zip(levels: int, inner: bytes | None = None) -> bytes:
    """A zip holding a zip ... `levels` deep (1: a zip holding a zip of text)."""
    data = inner if inner is not None else zip_of([("note.txt", TEXT)])
    for level in range(levels):
        data = zip_of([(f"level{level + 1}.zip", data), ("cover.txt", TEXT)])
    return data


def docx() -> bytes:
    """The smallest Word document Word opens: content types, package relations, one paragraph."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        "</Types>"
    )
    relations = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="word/document.xml"/>'
        "</Relationships>"
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>Hello from a generated document.</w:t></w:r></w:p></w:body>"
        "</w:document>"
    )
    return zip_of(
        [
            ("[Content_Types].xml", content_types.encode()),
            ("_rels/.rels", relations.encode()),
            ("word/document.xml", document.encode()),
        ]
    )


def streamed_zip(entries: dict[str, bytes]) -> bytes:
    """Written to a stream that cannot seek: each entry's sizes follow its data (flag 0x8)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return bytes(sink.data)


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


def zip64_entry_zip() -> bytes:
    """An entry written with zip64 sizes (0xFFFFFFFF in its local header, sizes in the extra)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("big.txt", "w", force_zip64=True) as entry:
            entry.write(TEXT)
        archive.writestr("small.txt", TEXT)
    return out.getvalue()


def patch_zip(
    data: bytes, name: str, *, where: tuple[str, ...] = ("local", "central"), **fields: int
) -> bytes:
    """`data` with the named entry's header fields (flags, method, crc, sizes) set by hand."""
    patched = bytearray(data)
    local_offset = _central_records(data)[name][2]
    central_offset = _central_records(data)[name][0]
    for field, value in fields.items():
        width = _WIDTH.get(field, 4)
        fmt = "<H" if width == 2 else "<L"
        if "local" in where and field in _LOCAL:
            struct.pack_into(fmt, patched, local_offset + _LOCAL[field], value)
        if "central" in where:
            struct.pack_into(fmt, patched, central_offset + _CENTRAL[field], value)
    return bytes(patched)


def _flags(data: bytes, name: str) -> int:
    return zipfile.ZipFile(io.BytesIO(data)).getinfo(name).flag_bits


def _central_records(data: bytes) -> dict[str, tuple[int, int, int]]:
    """Each entry's central record: name -> (offset, length, local header offset)."""
    end = data.rfind(b"PK\x05\x06")
    length, start = struct.unpack_from("<2L", data, end + 12)
    records = {}
    position = start
    while position < start + length:
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, position + 28)
        name = data[position + 46 : position + 46 + name_length].decode("utf-8")
        size = 46 + name_length + extra_length + comment_length
        local = struct.unpack_from("<L", data, position + 42)[0]
        records[name] = (position, size, local)
        position += size
    return records


# TAR


def tar_of(
    members: Iterable[tuple[tarfile.TarInfo, bytes]], *, fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **attributes: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_714_564_800
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attributes.items():
        setattr(info, key, value)
    return info


def normal_tar() -> bytes:
    return tar_of(
        [
            (member("report", tarfile.DIRTYPE), b""),
            (member("report/summary.txt"), TEXT),
            (member("report/figures.csv"), b"quarter,revenue\nQ1,100\nQ2,120\n"),
        ]
    )


def old_tar(name: str = "old.txt", data: bytes = TEXT) -> bytes:
    """A pre-POSIX (v7) TAR: no "ustar" magic, only a header checksum to know it by."""
    header = bytearray(member(name, size=len(data)).tobuf(format=tarfile.USTAR_FORMAT))
    header[257:265] = bytes(8)  # magic and version
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data + bytes(-len(data) % 512) + bytes(1024)


def tar_with_files(names: Iterable[str], data: bytes = TEXT) -> bytes:
    return tar_of([(member(name), data) for name in names])


def tar_with_symlink() -> bytes:
    return tar_of([(member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), b"")])


def tar_with_hardlink() -> bytes:
    return tar_of([(member("link", tarfile.LNKTYPE, linkname="/etc/shadow"), b"")])


def tar_with_device() -> bytes:
    return tar_of([(member("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), b"")])


def tar_with_fifo() -> bytes:
    return tar_of([(member("pipe", tarfile.FIFOTYPE), b"")])


def tar_with_big_pax_header(size: int = 2 * MIB) -> bytes:
    info = member("a.txt", pax_headers={"comment": "x" * size})
    return tar_of([(info, TEXT)])


def tar_with_damaged_header_then(name: str) -> bytes:
    """A good member, a block of garbage where a header belongs, then `name`: tarfile stops at
    the garbage, GNU tar skips it and extracts `name`."""
    garbage = (b"\x7fGARBAGE" * 64)[:512]
    return _blocks(member("a.txt"), TEXT) + garbage + _blocks(member(name), TEXT) + bytes(1024)


def _blocks(info: tarfile.TarInfo, data: bytes) -> bytes:
    """One member's header and data blocks, without the archive's end marker."""
    info.size = len(data)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


def tar_with_data_after_end() -> bytes:
    return normal_tar() + b"PK\x03\x04 more data after the end marker"


def gnu_sparse_tar() -> bytes:
    """A member of GNU's old sparse type ("S"), as tar --sparse writes it."""
    return tar_of([(member("disk.img", tarfile.GNUTYPE_SPARSE), b"")], fmt=tarfile.GNU_FORMAT)


# gzip


def gzip_of(data: bytes, name: str | None = None) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename=name or "", fileobj=out, mode="wb", mtime=0) as stream:
        stream.write(data)
    return out.getvalue()


def normal_tar_gz() -> bytes:
    return gzip_of(normal_tar())


def gzip_bomb(mib: int = 50) -> bytes:
    """`mib` MiB of zeros, gzip-compressed a MiB at a time."""
    return _gzip_stream(_ZEROS for _ in range(mib))


def tar_gz_bomb(mib: int = 50) -> bytes:
    """A TAR holding one file of `mib` MiB of zeros, gzip-compressed a MiB at a time."""
    info = member("zeros.bin", size=mib * MIB)
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    return _gzip_stream(chain_blocks(header, (_ZEROS for _ in range(mib)), bytes(1024)))


def chain_blocks(*parts: bytes | Iterable[bytes]) -> Iterable[bytes]:
    for part in parts:
        if isinstance(part, bytes):
            yield part
        else:
            yield from part


def _gzip_stream(chunks: Iterable[bytes]) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = io.BytesIO()
    for chunk in chunks:
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    return out.getvalue()


def crafted_offset_zip() -> bytes:
    """A ZIP whose directory puts its first entry at byte 2**64 - 1 (a zip64 extra field) and
    its second at byte 0: past what a file position can hold, so seeking there fails."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("a.txt", "b.txt", "c.txt"):
            archive.writestr(name, b"hello")
    data = bytearray(buffer.getvalue())
    first = data.find(b"PK\x01\x02")
    second = data.find(b"PK\x01\x02", first + 4)
    struct.pack_into("<L", data, second + 42, 0)
    name_length = struct.unpack_from("<H", data, first + 28)[0]
    extra = struct.pack("<HHQ", 1, 8, 2**64 - 1)
    struct.pack_into("<L", data, first + 42, 0xFFFFFFFF)
    struct.pack_into("<H", data, first + 30, len(extra))
    data[first + 46 + name_length : first + 46 + name_length] = extra
    end = data.rfind(b"PK\x05\x06")
    size = struct.unpack_from("<L", data, end + 12)[0]
    struct.pack_into("<L", data, end + 12, size + len(extra))
    return bytes(data)
