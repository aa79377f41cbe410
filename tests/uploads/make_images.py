"""Benign and hostile image bytes, built in memory (no downloads, no files in the repository).

The benign images carry the metadata re-encoding must strip (EXIF with GPS, comments, text chunks,
ICC profiles, XMP), each marked with a SECRET string so a test can look for it in raw bytes. The
hostile ones are built by hand where Pillow would refuse to write them: headers that claim huge
sizes, truncated data, junk behind the right magic bytes, data appended after the image's end.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

from PIL import Image, ImageCms, ImageDraw, PngImagePlugin

SIZE = (64, 48)
SCRIPT_PAYLOAD = b"<script>alert(1)</script>"
EXIF_SECRET = "SECRET-EXIF-ARTIST"
XMP_SECRET = b"SECRET-XMP-CREATOR"
COMMENT_SECRET = b"SECRET-COMMENT"
TEXT_SECRETS = (b"SECRET-TEXT", b"SECRET-ZTEXT", b"SECRET-ITEXT")
GPS_IFD = 0x8825
ARTIST = 0x013B
ORIENTATION = 0x0112
GPS_LATITUDE_REF, GPS_LATITUDE = 1, 2


def picture(mode: str = "RGB", size: tuple[int, int] = SIZE) -> Image.Image:
    """A small image with shapes and a gradient, so lossy re-encoding has something to keep."""
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(im)
    draw.rectangle((4, 4, size[0] // 2, size[1] // 2), fill=(200, 30, 40))
    draw.ellipse((size[0] // 3, size[1] // 3, size[0] - 4, size[1] - 4), fill=(20, 160, 60))
    if mode == "RGBA":
        im.putalpha(Image.linear_gradient("L").rotate(90).resize(size))
    return im.convert(mode) if mode not in ("RGB", "RGBA") else im


def saved(im: Image.Image, fmt: str, **params: object) -> bytes:
    """`im` written by Pillow as `fmt` into bytes."""
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (what cameras and editors embed), to show re-encoding drops it."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    """EXIF naming an artist and a GPS position (the privacy leak), with the given orientation."""
    exif = Image.Exif()
    exif[ARTIST] = EXIF_SECRET
    exif[ORIENTATION] = orientation
    exif.get_ifd(GPS_IFD).update({GPS_LATITUDE_REF: "N", GPS_LATITUDE: (51.0, 30.0, 12.5)})
    return exif


def xmp_packet() -> bytes:
    """A minimal XMP packet naming a creator."""
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="' + XMP_SECRET + b'"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )


def benign_png() -> bytes:
    """A 64 x 48 RGBA PNG with partial transparency and no metadata."""
    return saved(picture("RGBA"), "PNG")


def animated_png() -> bytes:
    """A 64 x 48 RGBA APNG of two frames (100 ms, 250 ms), looping three times."""
    return saved(
        picture("RGBA"),
        "PNG",
        save_all=True,
        append_images=[picture("RGBA").rotate(180)],
        duration=[100, 250],
        loop=3,
    )


def palette_png_with_transparency() -> bytes:
    """A 64 x 48 palette PNG whose colour 0 is transparent (a tRNS chunk, not an alpha band)."""
    return saved(picture().quantize(16), "PNG", transparency=0)


def benign_jpeg() -> bytes:
    """A 64 x 48 JPEG carrying EXIF (artist, GPS), a COM comment, XMP and an ICC profile."""
    return saved(
        picture(),
        "JPEG",
        quality=90,
        exif=exif_with_gps(),
        comment=COMMENT_SECRET,
        xmp=xmp_packet(),
        icc_profile=srgb_icc_profile(),
    )


def jpeg_rotated_by_exif() -> bytes:
    """A 64 x 48 JPEG whose EXIF orientation (6) says to show it turned, as 48 x 64."""
    return saved(picture(), "JPEG", quality=90, exif=exif_with_gps(orientation=6))


def benign_gif() -> bytes:
    """A 64 x 48 GIF of two frames (100 ms, 200 ms, looping), with transparency and a comment."""
    first = picture().quantize(16)
    second = picture().rotate(180).quantize(16)
    return saved(
        first,
        "GIF",
        save_all=True,
        append_images=[second],
        duration=[100, 200],
        loop=0,
        transparency=0,
        comment=COMMENT_SECRET,
    )


def gif_with_many_frames(frames: int, size: tuple[int, int] = (16, 16)) -> bytes:
    """An animated GIF of `frames` small frames (a frame-count flood when the limit is low)."""
    images = [Image.new("P", size, i % 4) for i in range(frames)]
    for im in images:
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    return saved(images[0], "GIF", save_all=True, append_images=images[1:], duration=50)


def gif_clearing_to_transparent() -> bytes:
    """A 32 x 32 GIF whose red square (frame 1) must vanish when a blue one shows (disposal 2)."""
    palette = [0, 0, 0, 255, 0, 0, 0, 0, 255]
    first, second = Image.new("P", (32, 32), 0), Image.new("P", (32, 32), 0)
    for im in (first, second):
        im.putpalette(palette)
    first.paste(1, (0, 0, 16, 16))
    second.paste(2, (16, 16, 32, 32))
    return saved(
        first,
        "GIF",
        save_all=True,
        append_images=[second],
        transparency=0,
        disposal=2,
        duration=100,
        loop=0,
    )


def benign_webp(*, lossless: bool = False) -> bytes:
    """A 64 x 48 RGBA WebP (lossy unless asked) carrying EXIF with GPS, XMP and an ICC profile."""
    return saved(
        picture("RGBA"),
        "WEBP",
        lossless=lossless,
        quality=90,
        exif=exif_with_gps(),
        xmp=xmp_packet(),
        icc_profile=srgb_icc_profile(),
    )


def animated_webp() -> bytes:
    """A 64 x 48 lossy WebP of two frames (100 ms, 200 ms), looping."""
    return saved(
        picture(),
        "WEBP",
        save_all=True,
        append_images=[picture().rotate(180)],
        duration=[100, 200],
        loop=0,
        quality=90,
    )


def mpo_jpeg() -> bytes:
    """A JPEG holding two images (a camera's MPO), which libmagic sniffs as image/jpeg."""
    return saved(picture(), "MPO", save_all=True, append_images=[picture().rotate(180)])


def benign_tiff() -> bytes:
    """A 64 x 48 RGB TIFF of two pages, with an ICC profile and an image description."""
    return saved(
        picture(),
        "TIFF",
        save_all=True,
        append_images=[picture().rotate(180)],
        icc_profile=srgb_icc_profile(),
        description=COMMENT_SECRET.decode(),
        compression="tiff_adobe_deflate",
    )


def benign_avif() -> bytes:
    """A 64 x 48 AVIF carrying EXIF with GPS and XMP (only where Pillow can write AVIF)."""
    return saved(picture(), "AVIF", quality=90, exif=exif_with_gps(), xmp=xmp_packet())


def png_with_text_chunk() -> bytes:
    """A 64 x 48 PNG with tEXt, zTXt and iTXt secrets, an eXIf chunk with GPS, and an iCCP."""
    info = PngImagePlugin.PngInfo()
    text, ztext, itext = (secret.decode() for secret in TEXT_SECRETS)
    info.add_text("Comment", text)
    info.add_text("Author", ztext, zip=True)
    info.add_itxt("Description", itext, lang="en", tkey="Description")
    return saved(
        picture(), "PNG", pnginfo=info, exif=exif_with_gps(), icc_profile=srgb_icc_profile()
    )


def png_with_text_bomb(megabytes: int = 64) -> bytes:
    """A small PNG whose zTXt chunk (before the image data) inflates to `megabytes` of text."""
    data = benign_png()
    after_ihdr = len(MAGIC["PNG"]) + 8 + 13 + 4  # signature, then IHDR's length, type, data, CRC
    bomb = b"Comment\x00\x00" + zlib.compress(b"A" * (megabytes << 20), 9)
    return data[:after_ihdr] + png_chunk(b"zTXt", bomb) + data[after_ihdr:]


def zip_payload() -> bytes:
    """A small zip archive (a polyglot's tail: image viewers see a picture, unzip sees files)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", SCRIPT_PAYLOAD)
    return out.getvalue()


def image_with_appended_data(fmt: str, payload: bytes = SCRIPT_PAYLOAD) -> bytes:
    """A valid `fmt` image (PNG, JPEG, GIF, WEBP) with `payload` appended after its end."""
    benign = {"PNG": benign_png, "JPEG": benign_jpeg, "GIF": benign_gif, "WEBP": benign_webp}
    return benign[fmt]() + payload


def truncated_png() -> bytes:
    """A PNG cut off in the middle of its image data (IDAT), with no IEND."""
    data = saved(picture(), "PNG")
    idat = data.index(b"IDAT")
    return data[: idat + 4 + 40]


def truncated_jpeg() -> bytes:
    """A JPEG cut off halfway through its entropy-coded scan, with no EOI marker."""
    data = saved(picture(size=(256, 256)), "JPEG", quality=95)
    start_of_scan = data.index(b"\xff\xda")
    return data[: start_of_scan + (len(data) - start_of_scan) // 2]


def truncated_gif() -> bytes:
    """A GIF cut off in the middle of its first frame's LZW data."""
    data = saved(picture(size=(256, 256)).quantize(64), "GIF")
    return data[: len(data) // 2]


MAGIC = {
    "PNG": b"\x89PNG\r\n\x1a\n",
    "JPEG": b"\xff\xd8\xff\xe0",
    "GIF": b"GIF89a",
    "WEBP": b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    "TIFF": b"II*\x00",
}
# What follows the magic in garbage_after_magic: a small claimed size (16 x 16), and for PNG the
# start of the IHDR chunk that libmagic looks for before it calls the file image/png.
SMALL_SIZE_AFTER_MAGIC = {"PNG": b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x10\x00\x00\x00\x10"}


def garbage_after_magic(fmt: str) -> bytes:
    """The magic bytes libmagic sniffs as `fmt` (PNG, JPEG, GIF, WEBP, TIFF), then seeded junk.

    A small size follows the magic, and every junk byte has its high bit set, so no GIF block
    (`,` `!` `;`) hides in it to claim a huge frame: the refusal is for the damage, not the size.
    """
    junk = bytes(b | 0x80 for b in random.Random(fmt).randbytes(2048))  # noqa: S311 (test data)
    return MAGIC[fmt] + SMALL_SIZE_AFTER_MAGIC.get(fmt, b"\x10\x00\x10\x00") + junk


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC over type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_flood_png(width: int, height: int) -> bytes:
    """A PNG of ~100 bytes whose IHDR claims width x height RGB pixels (valid CRCs throughout)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    idat = zlib.compress(b"\x00" * 1024)  # the first rows' worth of zeros, nowhere near enough
    return (
        MAGIC["PNG"] + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def jpeg_segment_offset(data: bytes, markers: tuple[int, ...]) -> int:
    """Where the first segment with one of `markers` (e.g. 0xC0 for SOF0) starts in a JPEG."""
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not at a JPEG marker")
        marker = data[pos + 1]
        if marker in markers:
            return pos
        if marker == 0xDA:  # start of scan: no frame header before the image data
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    raise ValueError("segment not found")


def pixel_flood_jpeg(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 frame header is patched to claim width x height (≤ 65535)."""
    data = bytearray(saved(picture(size=(16, 16)), "JPEG"))
    sof = jpeg_segment_offset(bytes(data), (0xC0,))
    # SOF0: FF C0, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def pixel_flood_gif(width: int, height: int) -> bytes:
    """A tiny GIF whose logical screen claims width x height (≤ 65535 each)."""
    data = bytearray(saved(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def gif_frame_flood(frames: int) -> bytes:
    """A 1 x 1 GIF of `frames` frames, built by hand (23 bytes a frame, so 250,000 frames take
    under 6 MB): each frame a graphic control extension (10 ms) and one LZW-coded pixel, black
    and white in turn (a writer merges identical frames that follow each other)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"
    # Image descriptor at (0, 0), 1 x 1, no local colour table; LZW minimum code size 2 and the
    # 3-bit codes clear (4), the pixel (0 or 1), end (5) in one sub-block of two bytes.
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02"
    black, white = (control + descriptor + codes + b"\x00" for codes in (b"\x44\x01", b"\x4c\x01"))
    body = (black + white) * (frames // 2) + black * (frames % 2)
    return screen + loop + body + b"\x3b"


def tiff_with_pages(pages: int) -> bytes:
    """A TIFF of `pages` 1 x 1 pages."""
    images = [Image.new("L", (1, 1), i % 256) for i in range(pages)]
    return saved(images[0], "TIFF", save_all=True, append_images=images[1:])
