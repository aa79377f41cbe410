"""Benign and hostile PDF bytes, built in memory (no downloads, no files in the repository).

Most files are assembled by hand from numbered objects with a correct cross-reference table, so
each one holds exactly the construct a test is about; pypdf's PdfWriter builds the attachment
and the encrypted files, as a real producer would.
"""

from __future__ import annotations

import io
import random
import zlib

from pypdf import PdfWriter

PAGE_TEXT = "This guide mentions JavaScript, but runs none."
SCRIPT = b"app.alert\\(document.title\\);"  # escaped for a PDF literal string

_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object's body: its dictionary (with the right /Length) and its data."""
    return b"<<" + extra + b"/Length %d>>\nstream\n" % len(data) + data + b"\nendstream"


def _page_content() -> bytes:
    """The page's text, uncompressed, so the word JavaScript sits in the file's bytes as is."""
    return _stream(f"BT /F1 12 Tf 72 720 Td ({PAGE_TEXT}) Tj ET".encode())


def _page_objects(catalog_extra: bytes = b"", page_extra: bytes = b"") -> list[bytes]:
    """Objects 1-5 of a one-page PDF: catalog, page tree, page, its text, its font."""
    return [
        b"<</Type/Catalog/Pages 2 0 R" + catalog_extra + b">>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 5 0 R>>>>"
        b"/Contents 4 0 R" + page_extra + b">>",
        _page_content(),
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]


def _assemble(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A whole PDF: the objects numbered from 1, a cross-reference table, trailer and %%EOF."""
    out = bytearray(_HEADER)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f\r\n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n\r\n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R" % (len(objects) + 1) + trailer_extra + b">>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def _one_page_pdf(
    catalog_extra: bytes = b"", page_extra: bytes = b"", extra: tuple[bytes, ...] = ()
) -> bytes:
    """One page of text; `extra` objects are numbered from 6."""
    return _assemble([*_page_objects(catalog_extra, page_extra), *extra])


def _written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def benign_pdf() -> bytes:
    """One page of text that mentions JavaScript (in the page and the title), with no actions."""
    info = b"<</Title(A JavaScript primer)/Subject(JavaScript, JS and XFA explained)>>"
    return _assemble([*_page_objects(), info], trailer_extra=b"/Info 6 0 R")


def benign_pdf_with_compressed_url_text() -> bytes:
    """A page whose Flate-compressed text has the URL .../Web/JavaScript (not an object stream)."""
    objects = _page_objects()
    text = b"BT /F1 12 Tf 72 720 Td (https://developer.mozilla.org/en-US/docs/Web/JavaScript) Tj ET"
    objects[3] = _stream(zlib.compress(text), b"/Filter/FlateDecode")
    return _assemble(objects)


def pdf_with_javascript() -> bytes:
    """A JavaScript action the viewer runs on opening (the catalog's /OpenAction)."""
    action = b"<</Type/Action/S/JavaScript/JS(" + SCRIPT + b")>>"
    return _one_page_pdf(catalog_extra=b"/OpenAction 6 0 R", extra=(action,))


def pdf_with_js_in_annotation() -> bytes:
    """A link annotation whose action is JavaScript (/S/JavaScript with a /JS string)."""
    link = (
        b"<</Type/Annot/Subtype/Link/Rect[72 700 300 720]/Border[0 0 0]"
        b"/A<</S/JavaScript/JS(" + SCRIPT + b")>>>>"
    )
    return _one_page_pdf(page_extra=b"/Annots[6 0 R]", extra=(link,))


def pdf_with_launch_action() -> bytes:
    """An /OpenAction that launches a program (/S/Launch)."""
    action = b"<</Type/Action/S/Launch/F(calc.exe)/Win<</F(cmd.exe)/P(/c calc.exe)>>>>"
    return _one_page_pdf(catalog_extra=b"/OpenAction 6 0 R", extra=(action,))


def pdf_with_embedded_file() -> bytes:
    """A file attached with pypdf's add_attachment (/EmbeddedFiles name tree, /EmbeddedFile)."""
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_attachment("notes.txt", b"An attached file.\n")
    return _written(writer)


def pdf_with_xfa() -> bytes:
    """An interactive form (AcroForm) that carries an XFA form, which can hold scripts."""
    xdp = b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/"><template/></xdp:xdp>'
    return _one_page_pdf(catalog_extra=b"/AcroForm<</Fields[]/XFA 6 0 R>>", extra=(_stream(xdp),))


def pdf_with_hex_escaped_javascript() -> bytes:
    """A JavaScript /OpenAction spelled /J#61vaScript and /J#53, so neither name is plain bytes."""
    action = b"<</Type/Action/S/J#61vaScript/J#53(" + SCRIPT + b")>>"
    return _one_page_pdf(catalog_extra=b"/OpenAction 6 0 R", extra=(action,))


def pdf_with_js_in_object_stream(declared_objects: int | None = None) -> bytes:
    """PDF 1.5: the JavaScript /OpenAction packed in a Flate object stream (7), xref stream (8).

    `declared_objects` replaces the object stream's /N (the 5 objects it holds), as a hostile
    file claims millions.
    """
    catalog, pages, page, content, font = _page_objects(catalog_extra=b"/OpenAction 6 0 R")
    action = b"<</Type/Action/S/JavaScript/JS(" + SCRIPT + b")>>"
    packed = {1: catalog, 2: pages, 3: page, 5: font, 6: action}
    out = bytearray(_HEADER.replace(b"1.7", b"1.5"))
    offsets = {4: len(out)}
    out += b"4 0 obj\n" + content + b"\nendobj\n"
    offsets[7] = len(out)
    out += b"7 0 obj\n" + _object_stream(packed, declared_objects) + b"\nendobj\n"
    offsets[8] = len(out)
    out += b"8 0 obj\n" + _xref_stream(offsets, packed, size=9) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[8]
    return bytes(out)


def _object_stream(packed: dict[int, bytes], declared_objects: int | None = None) -> bytes:
    """An /ObjStm holding `packed` (number -> body), Flate-compressed; /N as declared, if given."""
    bodies, index, position = [], [], 0
    for number, body in packed.items():
        index.append(b"%d %d" % (number, position))
        bodies.append(body)
        position += len(body) + 1
    header = b" ".join(index) + b"\n"
    data = header + b"\n".join(bodies)
    count = len(packed) if declared_objects is None else declared_objects
    extra = b"/Type/ObjStm/N %d/First %d/Filter/FlateDecode" % (count, len(header))
    return _stream(zlib.compress(data), extra)


def _xref_stream(offsets: dict[int, int], packed: dict[int, bytes], size: int) -> bytes:
    """A cross-reference stream (/W [1 4 2]): offsets for plain objects, slots in stream 7."""
    rows = []
    for number in range(size):
        if number in offsets:
            rows.append(b"\x01" + offsets[number].to_bytes(4, "big") + b"\x00\x00")
        elif number in packed:
            slot = list(packed).index(number)
            rows.append(b"\x02" + (7).to_bytes(4, "big") + slot.to_bytes(2, "big"))
        else:
            rows.append(b"\x00" + bytes(4) + b"\xff\xff")
    extra = b"/Type/XRef/Size %d/W[1 4 2]/Root 1 0 R" % size
    return _stream(b"".join(rows), extra)


def malformed_pdf_with_javascript() -> bytes:
    """pdf_with_javascript cut off before its cross-reference table, trailer and %%EOF."""
    data = pdf_with_javascript()
    return data[: data.rindex(b"xref")]


def malformed_pdf_with_js_in_object_stream() -> bytes:
    """pdf_with_js_in_object_stream cut off before its cross-reference stream and %%EOF."""
    data = pdf_with_js_in_object_stream()
    return data[: data.rindex(b"8 0 obj")]


def garbage_pdf() -> bytes:
    """A %PDF- header followed by random bytes: no PDF structure at all."""
    return b"%PDF-1.7\n" + random.Random(1).randbytes(8192)  # noqa: S311 (test data)


def pdf_with_javascript_and_embedded_file() -> bytes:
    """pdf_with_javascript with a file attached to it as well."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf_with_javascript()))
    writer.add_attachment("notes.txt", b"An attached file.\n")
    return _written(writer)


def deeply_nested_pdf(depth: int = 100) -> bytes:
    """A catalog entry holding arrays nested `depth` deep, deeper than any real file needs."""
    nested = b"[" * depth + b"/Deep" + b"]" * depth
    return _one_page_pdf(catalog_extra=b"/Nested 6 0 R", extra=(nested,))


def encrypted_pdf_with_javascript() -> bytes:
    """RC4-encrypted with an empty user password (opens without asking), with JavaScript."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf_with_javascript()))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    return _written(writer)


def password_protected_pdf() -> bytes:
    """RC4-encrypted with a user password: no one can check it without that password."""
    writer = PdfWriter(clone_from=io.BytesIO(benign_pdf()))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    return _written(writer)


def padded_pdf_with_javascript(*, size: int, token_at: int) -> bytes:
    """`size` bytes of %PDF- header and random padding, with /JavaScript starting at `token_at`."""
    token = b" /JavaScript "
    padding = random.Random(2).randbytes(size)  # noqa: S311 (test data)
    start = token_at - 1
    data = b"%PDF-1.7\n" + padding[9:start] + token + padding[start + len(token) :]
    return data[:size]


def aes_encrypted_pdf(*, with_javascript: bool) -> bytes:
    """AES-256 with an empty user password, as many producers write "restricted" PDFs."""
    source = pdf_with_javascript() if with_javascript else benign_pdf()
    writer = PdfWriter(clone_from=io.BytesIO(source))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    return _written(writer)


def pdf_with_object_stream_bombs(
    *,
    streams: int = 8,
    inflated: int = 32 << 20,
    filler: bytes = b"\x00",
    declared_objects: int = 1,
) -> bytes:
    """A one-page PDF 1.5 with `streams` Flate object streams, each a small file inflating to
    `inflated` bytes: one object (`<</Padding true>>`) and then filler up to that size.

    NUL bytes (the default) are white space to a PDF reader, which pypdf skips one byte at a time
    in Python after the object; a byte like `x` ends its reading at once. `declared_objects` is
    the object streams' /N (a hostile one claims far more objects than the stream holds). Each
    stream's Flate data is written a MiB at a time, never whole in memory.
    """
    catalog, pages, page, content, font = _page_objects()
    out = bytearray(_HEADER.replace(b"1.7", b"1.5"))
    offsets: dict[int, int] = {}
    for number, body in enumerate([catalog, pages, page, content, font], start=1):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    packed: dict[int, tuple[int, int]] = {}
    for index in range(streams):
        stream_number, member = 6 + 2 * index, 7 + 2 * index
        header = b"%d 0\n" % member
        data = _deflated(header + b"<</Padding true>>", filler, inflated)
        extra = b"/Type/ObjStm/N %d/First %d/Filter/FlateDecode" % (declared_objects, len(header))
        offsets[stream_number] = len(out)
        out += b"%d 0 obj\n" % stream_number + _stream(data, extra) + b"\nendobj\n"
        packed[member] = (stream_number, 0)
    xref_number = 6 + 2 * streams
    offsets[xref_number] = len(out)
    xref = _general_xref_stream(offsets, packed, size=xref_number + 1)
    out += b"%d 0 obj\n" % xref_number + xref + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_number]
    return bytes(out)


def _deflated(prefix: bytes, filler: bytes, size: int) -> bytes:
    """zlib data inflating to `prefix` and then `filler` repeated, `size` bytes in all."""
    compressor = zlib.compressobj(9)
    pieces = [compressor.compress(prefix)]
    remaining = size - len(prefix)
    block = filler * ((1 << 20) // len(filler))
    while remaining > 0:
        piece = block[:remaining]
        pieces.append(compressor.compress(piece))
        remaining -= len(piece)
    pieces.append(compressor.flush())
    return b"".join(pieces)


def _general_xref_stream(
    offsets: dict[int, int], packed: dict[int, tuple[int, int]], size: int
) -> bytes:
    """A cross-reference stream (/W [1 4 2]): offsets of plain objects, (stream, index) slots."""
    rows = []
    for number in range(size):
        if number in offsets:
            rows.append(b"\x01" + offsets[number].to_bytes(4, "big") + b"\x00\x00")
        elif number in packed:
            stream_number, index = packed[number]
            rows.append(b"\x02" + stream_number.to_bytes(4, "big") + index.to_bytes(2, "big"))
        else:
            rows.append(b"\x00" + bytes(4) + b"\xff\xff")
    extra = b"/Type/XRef/Size %d/W[1 4 2]/Root 1 0 R" % size
    return _stream(b"".join(rows), extra)


def pdf_with_flooded_object_stream_index(entries: int = 200_000) -> bytes:
    """A one-page PDF 1.5 whose object stream indexes `entries` objects (`null`s, numbered from
    100000) after the one the cross-reference stream points to: a reader that parses the whole
    index parses every one of them."""
    catalog, pages, page, content, font = _page_objects()
    out = bytearray(_HEADER.replace(b"1.7", b"1.5"))
    offsets: dict[int, int] = {}
    for number, body in enumerate([catalog, pages, page, content, font], start=1):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    pairs = [b"7 0"] + [b"%d %d" % (100_000 + i, 5 * i) for i in range(1, entries)]
    header = b" ".join(pairs) + b"\n"
    data = header + b"null " * entries
    extra = b"/Type/ObjStm/N %d/First %d/Filter/FlateDecode" % (entries, len(header))
    offsets[6] = len(out)
    out += b"6 0 obj\n" + _stream(zlib.compress(data), extra) + b"\nendobj\n"
    offsets[8] = len(out)
    out += b"8 0 obj\n" + _general_xref_stream(offsets, {7: (6, 0)}, size=9) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[8]
    return bytes(out)
