"""uploads.images: pixel floods refused from the header, damaged images refused, clean copies kept.

No database: every image is built in memory by tests.uploads.make_images.
"""

from __future__ import annotations

import io
import struct
import tempfile
import time
import warnings
from collections.abc import Callable

import pytest
from PIL import Image, ImageChops, ImageFile, features

from policies.models import UploadPolicy
from project.errors import UploadRejected
from tests.uploads import make_images
from tests.uploads.test_sandbox import measured
from uploads import images
from uploads.images import IMAGE_FORMATS, inspect_image, reencode_image
from uploads.inspect import check_content

MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
AVIF = pytest.mark.skipif("image/avif" not in IMAGE_FORMATS, reason="Pillow cannot write AVIF")

BENIGN = [
    pytest.param("image/png", make_images.benign_png, id="png"),
    pytest.param("image/png", make_images.palette_png_with_transparency, id="png-palette"),
    pytest.param("image/png", make_images.png_with_text_chunk, id="png-text"),
    pytest.param("image/png", make_images.animated_png, id="png-animated"),
    pytest.param("image/jpeg", make_images.benign_jpeg, id="jpeg"),
    pytest.param("image/gif", make_images.benign_gif, id="gif"),
    pytest.param("image/webp", make_images.benign_webp, id="webp"),
    pytest.param("image/webp", make_images.animated_webp, id="webp-animated"),
    pytest.param("image/tiff", make_images.benign_tiff, id="tiff"),
    pytest.param("image/avif", make_images.benign_avif, id="avif", marks=AVIF),
]


# Helpers


def inspect(data: bytes, mime: str, *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE):
    inspect_image(io.BytesIO(data), mime=mime, max_pixels=max_pixels, max_side=max_side)


def refusal(data: bytes, mime: str, **limits: int) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        inspect(data, mime, **limits)
    return caught.value


def reencoded(data: bytes, mime: str) -> bytes:
    dest = io.BytesIO()
    reencode_image(io.BytesIO(data), dest, mime=mime)
    return dest.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def frame_count(data: bytes) -> int:
    return getattr(opened(data), "n_frames", 1)


def frames_info(data: bytes) -> list[dict]:
    """Pillow's `info` for every frame, each after decoding (some keys appear only then)."""
    im = opened(data)
    infos = []
    for index in range(getattr(im, "n_frames", 1)):
        im.seek(index)
        im.load()
        infos.append(dict(im.info))
    return infos


def visible_frames(data: bytes) -> list[Image.Image]:
    """Each frame as RGBA, with fully transparent pixels all the same, to compare what shows."""
    im = opened(data)
    frames = []
    for index in range(getattr(im, "n_frames", 1)):
        im.seek(index)
        rgba = im.convert("RGBA")
        clear = Image.new("RGBA", rgba.size)
        clear.paste(rgba, mask=rgba.getchannel("A").point(lambda a: 255 if a else 0))
        frames.append(clear)
    return frames


def png_chunk_types(data: bytes) -> list[bytes]:
    pos, types = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        types.append(kind)
        pos += 12 + length
    return types


def riff_chunk_types(data: bytes) -> list[bytes]:
    pos, types = 12, []
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        types.append(kind)
        pos += 8 + length + (length & 1)
    return types


@pytest.fixture
def forbid_decoding(monkeypatch) -> Callable[[], list[str]]:
    """Call it (after building the test image) to record, and fail, every pixel decode."""

    def forbid() -> list[str]:
        calls: list[str] = []

        def record(self, *args, **kwargs):
            calls.append(type(self).__name__)
            raise AssertionError("pixels were decoded")

        monkeypatch.setattr(ImageFile.ImageFile, "load", record)
        monkeypatch.setattr(Image.Image, "load", record)
        return calls

    return forbid


# Formats


def test_image_formats_map_each_sniffed_type_to_its_pillow_format():
    expected = {
        "image/png": "PNG",
        "image/jpeg": "JPEG",
        "image/gif": "GIF",
        "image/webp": "WEBP",
        "image/tiff": "TIFF",
    }
    if features.check_module("avif"):
        expected["image/avif"] = "AVIF"
    assert expected == IMAGE_FORMATS


# Benign images


@pytest.mark.parametrize(("mime", "make"), BENIGN)
def test_benign_image_passes_inspection(mime: str, make: Callable[[], bytes]):
    inspect(make(), mime)


@pytest.mark.parametrize(("mime", "make"), BENIGN)
def test_reencoding_keeps_format_size_mode_and_frames(mime: str, make: Callable[[], bytes]):
    original = make()
    clean = reencoded(original, mime)
    assert opened(clean).format == IMAGE_FORMATS[mime]
    assert opened(clean).size == opened(original).size
    assert opened(clean).mode == opened(original).mode
    assert frame_count(clean) == frame_count(original)
    inspect(clean, mime)


@pytest.mark.parametrize(("mime", "make"), BENIGN)
def test_reencoded_copy_has_no_metadata(mime: str, make: Callable[[], bytes]):
    clean = reencoded(make(), mime)
    for info in frames_info(clean):
        assert not {"exif", "icc_profile", "xmp", "comment", "Comment", "Author"} & set(info)
    exif = opened(clean).getexif()  # a TIFF's own tags show here; no EXIF ones may
    assert make_images.ARTIST not in exif
    assert not exif.get_ifd(make_images.GPS_IFD)
    for secret in (
        make_images.EXIF_SECRET.encode(),
        make_images.XMP_SECRET,
        make_images.COMMENT_SECRET,
        *make_images.TEXT_SECRETS,
    ):
        assert secret not in clean


@pytest.mark.parametrize(("mime", "make"), BENIGN)
def test_both_functions_leave_the_source_at_its_start(mime: str, make: Callable[[], bytes]):
    source = io.BytesIO(make())
    source.seek(7)
    inspect_image(source, mime=mime, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
    assert source.tell() == 0
    source.seek(7)
    reencode_image(source, io.BytesIO(), mime=mime)
    assert source.tell() == 0
    assert not source.closed


@pytest.mark.parametrize(
    ("make", "mime"),
    [
        (make_images.truncated_png, "image/png"),
        (lambda: make_images.pixel_flood_png(20_000, 20_000), "image/png"),
        (make_images.benign_png, "image/bmp"),
    ],
    ids=["truncated", "flood", "unknown-type"],
)
def test_source_is_at_its_start_after_a_refusal(make: Callable[[], bytes], mime: str):
    source = io.BytesIO(make())
    source.seek(7)
    with pytest.raises(UploadRejected):
        inspect_image(source, mime=mime, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)
    assert source.tell() == 0
    source.seek(7)
    with pytest.raises(UploadRejected):
        reencode_image(source, io.BytesIO(), mime=mime)
    assert source.tell() == 0


# Metadata, format by format


def test_jpeg_loses_exif_gps_comment_xmp_and_icc_profile():
    original = make_images.benign_jpeg()
    assert opened(original).getexif().get_ifd(make_images.GPS_IFD)  # the test image has GPS
    clean = reencoded(original, "image/jpeg")
    assert b"Exif" not in clean
    assert b"ICC_PROFILE" not in clean
    assert b"http://ns.adobe.com/xap" not in clean
    assert b"\xff\xfe" not in clean  # COM: in scan data 0xFF is always followed by 0x00 or RSTn
    assert b"\xff\xe1" not in clean  # APP1 (EXIF, XMP)
    assert b"\xff\xe2" not in clean  # APP2 (ICC)
    assert not opened(clean).getexif().get_ifd(make_images.GPS_IFD)


def test_jpeg_exif_orientation_is_applied_to_the_pixels():
    original = make_images.jpeg_rotated_by_exif()
    assert opened(original).size == (64, 48)
    clean = reencoded(original, "image/jpeg")
    assert opened(clean).size == (48, 64)
    assert make_images.ORIENTATION not in opened(clean).getexif()


def test_png_loses_text_exif_and_icc_chunks():
    original = make_images.png_with_text_chunk()
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"} <= set(png_chunk_types(original))
    clean = reencoded(original, "image/png")
    assert png_chunk_types(clean) == [b"IHDR", b"IDAT", b"IEND"]
    assert opened(clean).text == {}


def test_png_keeps_its_transparency():
    clean = reencoded(make_images.benign_png(), "image/png")
    assert opened(clean).mode == "RGBA"
    palette_clean = reencoded(make_images.palette_png_with_transparency(), "image/png")
    assert opened(palette_clean).mode == "P"
    assert opened(palette_clean).info["transparency"] == 0
    assert b"tRNS" in png_chunk_types(palette_clean)


def test_webp_loses_exif_xmp_and_icc_chunks():
    original = make_images.benign_webp()
    assert {b"EXIF", b"XMP ", b"ICCP"} <= set(riff_chunk_types(original))
    clean = reencoded(original, "image/webp")
    assert not {b"EXIF", b"XMP ", b"ICCP"} & set(riff_chunk_types(clean))
    assert opened(clean).mode == "RGBA"


@pytest.mark.parametrize(("lossless", "bitstream"), [(True, b"VP8L"), (False, b"VP8 ")])
def test_webp_stays_lossless_or_lossy(lossless: bool, bitstream: bytes):
    clean = reencoded(make_images.benign_webp(lossless=lossless), "image/webp")
    assert bitstream in riff_chunk_types(clean)


def test_gif_keeps_frames_durations_loop_and_transparency_but_not_its_comment():
    clean = reencoded(make_images.benign_gif(), "image/gif")
    infos = frames_info(clean)
    assert [info["duration"] for info in infos] == [100, 200]
    assert infos[0]["loop"] == 0
    assert "transparency" in infos[0]
    assert all("comment" not in info for info in infos)
    assert make_images.COMMENT_SECRET not in clean


@pytest.mark.parametrize("make", [make_images.benign_gif, make_images.gif_clearing_to_transparent])
def test_gif_frames_show_the_same_after_reencoding(make: Callable[[], bytes]):
    original = make()
    clean = reencoded(original, "image/gif")
    pairs = zip(visible_frames(original), visible_frames(clean), strict=True)
    assert all(ImageChops.difference(before, after).getbbox() is None for before, after in pairs)


def test_animated_webp_keeps_frames_durations_and_loop():
    clean = reencoded(make_images.animated_webp(), "image/webp")
    infos = frames_info(clean)
    assert [info["duration"] for info in infos] == [100, 200]
    assert infos[0]["loop"] == 0


def test_animated_png_keeps_frames_durations_and_loop():
    clean = reencoded(make_images.animated_png(), "image/png")
    infos = frames_info(clean)
    assert [info["duration"] for info in infos] == [100, 250]
    assert infos[0]["loop"] == 3


def test_tiff_keeps_its_pages_but_not_its_icc_profile_or_description():
    clean = reencoded(make_images.benign_tiff(), "image/tiff")
    assert frame_count(clean) == 2
    assert b"acsp" not in clean  # every ICC profile carries this signature
    assert make_images.COMMENT_SECRET not in clean


@AVIF
def test_avif_loses_exif_and_xmp():
    clean = reencoded(make_images.benign_avif(), "image/avif")
    assert b"Exif" not in clean
    assert b"adobe:ns:meta" not in clean


def test_jpeg_holding_several_images_is_kept_as_its_primary_image():
    original = make_images.mpo_jpeg()
    assert opened(original).format == "MPO"
    inspect(original, "image/jpeg")
    clean = reencoded(original, "image/jpeg")
    assert opened(clean).format == "JPEG"
    assert frame_count(clean) == 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize(
    "payload",
    [make_images.SCRIPT_PAYLOAD, make_images.zip_payload()],
    ids=["script", "zip"],
)
def test_data_appended_after_the_image_is_gone(fmt: str, payload: bytes):
    mime = f"image/{fmt.lower()}"
    original = make_images.image_with_appended_data(fmt, payload)
    inspect(original, mime)  # trailing bytes are not refused here: re-encoding drops them
    clean = reencoded(original, mime)
    assert b"<script>" not in clean
    assert b"PK\x03\x04" not in clean
    assert b"payload.html" not in clean


# Pixel floods


@pytest.mark.parametrize(
    "data",
    [
        make_images.pixel_flood_png(100_000, 100_000),
        make_images.pixel_flood_png(9_000, 9_000),
        make_images.pixel_flood_jpeg(65_535, 65_535),
        make_images.pixel_flood_jpeg(9_000, 9_000),
        make_images.pixel_flood_gif(9_000, 9_000),
    ],
    ids=["png-100000", "png-9000", "jpeg-65535", "jpeg-9000", "gif-9000"],
)
def test_pixel_flood_is_refused_from_the_header_without_decoding(data: bytes, forbid_decoding):
    assert len(data) < 1024
    mime = {b"\x89P": "image/png", b"\xff\xd8": "image/jpeg", b"GI": "image/gif"}[data[:2]]
    decoded = forbid_decoding()
    started = time.perf_counter()
    rejected = refusal(data, mime)
    assert time.perf_counter() - started < 0.5
    assert rejected.code == "image_too_large"
    assert decoded == []


def test_pixel_flood_detail_names_the_size_and_the_limits():
    rejected = refusal(make_images.pixel_flood_png(13_000, 6_000), "image/png")
    assert rejected.code == "image_too_large"
    assert rejected.detail == (
        "The image is 13000 \N{MULTIPLICATION SIGN} 6000 pixels; this upload accepts at most "
        "12,000 pixels on a side and 40,000,000 pixels in all."
    )


def test_pillow_decompression_bomb_refusal_names_the_limits():
    # Past Image.MAX_IMAGE_PIXELS, Pillow refuses inside Image.open, before the header check.
    rejected = refusal(make_images.pixel_flood_png(100_000, 100_000), "image/png")
    assert rejected.code == "image_too_large"
    assert "12,000 pixels on a side and 40,000,000 pixels in all" in rejected.detail


def test_max_side_alone_refuses_a_long_thin_image(forbid_decoding):
    data = make_images.pixel_flood_png(13_000, 10)  # 130,000 pixels: far under max_pixels
    decoded = forbid_decoding()
    assert refusal(data, "image/png").code == "image_too_large"
    assert decoded == []


def test_max_pixels_alone_refuses_an_image_with_short_sides(forbid_decoding):
    data = make_images.pixel_flood_png(7_000, 7_000)  # 49,000,000 pixels, sides under 12,000
    decoded = forbid_decoding()
    assert refusal(data, "image/png").code == "image_too_large"
    assert decoded == []


def test_limits_are_inclusive_and_each_triggers_by_itself():
    data = make_images.benign_png()  # 64 x 48
    inspect(data, "image/png", max_pixels=64 * 48, max_side=64)
    assert refusal(data, "image/png", max_pixels=10**6, max_side=63).code == "image_too_large"
    assert refusal(data, "image/png", max_pixels=64 * 48 - 1, max_side=10**4).code == (
        "image_too_large"
    )


def test_frames_count_towards_max_pixels_before_decoding(forbid_decoding):
    data = make_images.gif_with_many_frames(50)  # 16 x 16 in 50 frames: 12,800 pixels
    decoded = forbid_decoding()
    rejected = refusal(data, "image/gif", max_pixels=16 * 16 * 49)
    assert rejected.code == "image_too_large"
    assert "in 50 frames" in rejected.detail
    assert decoded == []


def test_frames_at_the_pixel_limit_pass():
    inspect(make_images.gif_with_many_frames(50), "image/gif", max_pixels=16 * 16 * 50)


# Damaged, truncated and mislabelled files


@pytest.mark.parametrize(
    ("mime", "make", "name"),
    [
        ("image/png", make_images.truncated_png, "PNG"),
        ("image/jpeg", make_images.truncated_jpeg, "JPEG"),
        ("image/gif", make_images.truncated_gif, "GIF"),
    ],
)
def test_truncated_image_is_refused(mime: str, make: Callable[[], bytes], name: str):
    rejected = refusal(make(), mime)
    assert rejected.code == "image_invalid"
    assert rejected.detail == f"The file is not a valid {name} image: it is damaged or truncated."


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF"])
def test_garbage_after_magic_bytes_is_refused(fmt: str):
    rejected = refusal(make_images.garbage_after_magic(fmt), f"image/{fmt.lower()}")
    assert rejected.code == "image_invalid"
    assert rejected.detail.isprintable()
    assert "\\x" not in rejected.detail
    assert "b'" not in rejected.detail


@pytest.mark.parametrize(
    ("make", "mime"),
    [
        (make_images.benign_png, "image/jpeg"),
        (make_images.benign_jpeg, "image/png"),
        (make_images.benign_gif, "image/webp"),
        (make_images.benign_webp, "image/gif"),
    ],
)
def test_content_of_another_format_than_the_sniffed_type_is_refused(
    make: Callable[[], bytes], mime: str
):
    assert refusal(make(), mime).code == "image_invalid"


@pytest.mark.parametrize("mime", ["image/bmp", "image/svg+xml", "application/pdf"])
def test_type_outside_image_formats_is_refused(mime: str):
    assert refusal(make_images.benign_png(), mime).code == "image_invalid"
    with pytest.raises(UploadRejected) as caught:
        reencoded(make_images.benign_png(), mime)
    assert caught.value.code == "image_invalid"


def test_compressed_text_bomb_is_refused_quickly():
    data = make_images.png_with_text_bomb(64)
    assert len(data) < 100_000
    started = time.perf_counter()
    assert refusal(data, "image/png").code == "image_invalid"
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("make", "mime"),
    [
        (make_images.truncated_png, "image/png"),
        (lambda: make_images.garbage_after_magic("WEBP"), "image/webp"),
        (make_images.benign_png, "image/gif"),
    ],
)
def test_reencoding_a_bad_file_raises_only_upload_rejected(make: Callable[[], bytes], mime: str):
    with pytest.raises(UploadRejected) as caught:
        reencoded(make(), mime)
    assert caught.value.code == "image_invalid"


# Pillow's global settings


def test_pillow_globals_are_left_alone():
    max_pixels, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    inspect(make_images.benign_png(), "image/png")
    refusal(make_images.pixel_flood_png(100_000, 100_000), "image/png")
    reencoded(make_images.benign_jpeg(), "image/jpeg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert max_pixels == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


# Frame floods


def test_a_gif_of_250000_frames_is_refused_from_its_headers_quickly(forbid_decoding):
    data = make_images.gif_frame_flood(250_000)  # 5.75 MB, one pixel in each frame
    decoded = forbid_decoding()

    started = time.perf_counter()
    rejected = refusal(data, "image/gif")

    assert time.perf_counter() - started < 0.5
    assert rejected.code == "image_too_large"
    assert rejected.detail == (
        f"The image has more than {images.MAX_FRAMES:,} frames; this upload accepts at most "
        f"{images.MAX_FRAMES:,}."
    )
    assert decoded == []


def test_a_frame_flood_is_refused_through_the_pipeline_in_little_memory():
    data = make_images.gif_frame_flood(250_000)

    with measured() as cost, pytest.raises(UploadRejected) as caught:
        check_content(UploadPolicy(), io.BytesIO(data), "image/gif")

    assert caught.value.code == "image_too_large"
    assert cost["seconds"] < 1
    assert cost["rss_growth_mib"] < 64


def test_reencoding_refuses_a_frame_flood_by_itself():
    with pytest.raises(UploadRejected) as caught:
        reencoded(make_images.gif_frame_flood(images.MAX_FRAMES + 1), "image/gif")
    assert caught.value.code == "image_too_large"


def test_max_frames_is_inclusive():
    at_limit = make_images.gif_frame_flood(images.MAX_FRAMES)
    inspect(at_limit, "image/gif")
    assert frame_count(reencoded(at_limit, "image/gif")) == images.MAX_FRAMES

    over = refusal(make_images.gif_frame_flood(images.MAX_FRAMES + 1), "image/gif")
    assert over.code == "image_too_large"


def test_tiff_pages_count_as_frames(monkeypatch):
    monkeypatch.setattr(images, "MAX_FRAMES", 10)

    inspect(make_images.tiff_with_pages(10), "image/tiff")
    assert frame_count(reencoded(make_images.tiff_with_pages(10), "image/tiff")) == 10
    assert refusal(make_images.tiff_with_pages(11), "image/tiff").code == "image_too_large"
    assert refusal(make_images.tiff_with_pages(50), "image/tiff").code == "image_too_large"


def test_the_frame_count_walk_leaves_the_image_on_its_first_frame():
    for data in (make_images.gif_frame_flood(5), make_images.tiff_with_pages(5)):
        with Image.open(io.BytesIO(data)) as im:
            assert images._frames_within_limit(im) == 5
            assert im.tell() == 0


def test_a_reencoded_copy_is_written_into_a_real_file_at_its_position():
    with tempfile.TemporaryFile() as dest:
        dest.write(b"before")
        reencode_image(io.BytesIO(make_images.benign_png()), dest, mime="image/png")
        end = dest.tell()
        dest.seek(0)
        written = dest.read()

    assert written.startswith(b"before\x89PNG")
    assert end == len(written)
    assert opened(written[len(b"before") :]).size == make_images.SIZE
