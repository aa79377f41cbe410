"""The image step of the upload pipeline: refuse pixel floods and damaged images, keep clean copies.

libmagic has already sniffed the upload as one of IMAGE_FORMATS. `inspect_image` reads the size
from the header (Pillow's Image.open is lazy) and refuses a pixel flood before a single pixel is
decoded; then it decodes every frame, so truncated or damaged data is refused here instead of in a
viewer. `reencode_image` writes a fresh file holding pixels only: no EXIF (GPS), XMP, ICC profile,
comments or text chunks, and nothing a polyglot hid after the image's end.

Pillow is only ever asked to read the one format libmagic named (never to guess among all of its
plugins, some of which run external programs), and its global settings are left alone:
LOAD_TRUNCATED_IMAGES stays False and MAX_IMAGE_PIXELS keeps its value; its decompression-bomb
warning is turned into an error here only, for the length of one call.

Frames cost even when they are tiny: a 9 MB GIF holds 250,000 frames of one pixel, each a Python
object when decoded and kept. An image may hold at most MAX_FRAMES frames (or pages), counted
before any is decoded (GIF and TIFF files do not say how many they hold, so the count walks their
frame headers, stopping one past the limit). Re-encoding keeps every frame in memory (Pillow's
GIF, APNG and WebP writers collect all frames before writing), so the frame limit and the pixel
limits are what bound it.

`reencode_image` does its Pillow work in a child process with CPU and memory limits
(uploads.sandbox); the pipeline runs `inspect_image` in one too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import (
    GifImagePlugin,
    Image,
    ImageOps,
    TiffImagePlugin,
    UnidentifiedImageError,
    features,
)

from project.errors import UploadRejected
from uploads import sandbox

logger = logging.getLogger("portcullis.uploads")


def _pillow_can_read_and_write(pillow_format: str) -> bool:
    Image.init()
    return pillow_format in Image.OPEN and pillow_format in Image.SAVE


IMAGE_FORMATS: dict[str, str] = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
}
if features.check_module("avif") and _pillow_can_read_and_write("AVIF"):
    IMAGE_FORMATS["image/avif"] = "AVIF"

# What Pillow may report for each format it was asked to read: a JPEG holding several images
# (a camera's MPO) comes back as "MPO", and is re-encoded as its primary image, a plain JPEG.
_ALSO_REPORTED_AS = {"JPEG": {"MPO"}}
# Formats whose extra frames (animation, TIFF pages) survive re-encoding; others keep one image.
_MULTI_FRAME_FORMATS = {"PNG", "GIF", "WEBP", "TIFF", "AVIF"}
_DISPLAY_NAMES = {"WEBP": "WebP"}
# The only `info` keys a clean frame keeps: what transparency and animation need.
_FRAME_INFO_KEPT = ("transparency", "duration")
_JPEG_MODES = {"1", "L", "RGB", "CMYK"}
JPEG_QUALITY = 90
WEBP_QUALITY = 90
AVIF_QUALITY = 90
TIFF_COMPRESSION = "tiff_adobe_deflate"  # lossless and widely read
# Frames (or pages) an image may hold. Animations and multi-page scans stay far below; each frame
# costs a decode and an object in memory however few pixels it has.
MAX_FRAMES = 1000


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_side: int

    def phrase(self) -> str:
        return f"at most {self.max_side:,} pixels on a side and {self.max_pixels:,} pixels in all"


def inspect_image(source: BinaryIO, *, mime: str, max_pixels: int, max_side: int) -> None:
    """Refuse pixel floods from the header, before decoding; then decode every frame fully.

    Raises UploadRejected: `image_too_large` when the header (or a frame found while decoding)
    exceeds the limits, `image_invalid` when the file is not a whole, readable image of the
    format `mime` names. `source` is left at position 0.
    """
    limits = _Limits(max_pixels=max_pixels, max_side=max_side)
    try:
        pillow_format = _pillow_format(mime)
        with _pillow_errors(pillow_format, limits):
            with _open(source, pillow_format) as im:
                _check_header(im, limits)
                im.verify()  # PNG: every chunk's CRC, through IEND; the image must be reopened
            with _open(source, pillow_format) as im:
                _decode_every_frame(im, limits)
    finally:
        source.seek(0)


def reencode_image(source: BinaryIO, dest: BinaryIO, *, mime: str) -> None:
    """Write a clean copy of the image to dest: same format, pixels only, no metadata.

    EXIF orientation is applied to the pixels first, so the copy shows the same way up without
    its EXIF. Call it after inspect_image: it trusts the pixel limits were checked. `dest` is
    written from its current position and left after what was written; `source` is left at
    position 0.

    The Pillow work runs in a sandboxed child (uploads.sandbox): it writes into `dest` itself when
    `dest` is a real file, or sends the clean bytes back (an io.BytesIO). Raises UploadRejected
    like inspect_image, and sandbox.LimitsExceeded when the child runs out of CPU time, memory or
    time.
    """
    start = dest.tell()
    direct = _is_real_file(dest)
    try:
        result = sandbox.run(_reencode, source, dest if direct else None, mime=mime)
    finally:
        source.seek(0)
    if direct:
        dest.seek(start + result)
    else:
        dest.write(result)


def _is_real_file(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _reencode(source: BinaryIO, dest: BinaryIO | None, *, mime: str) -> int | bytes:
    """In the child: the clean copy written to `dest` (returning its length), or returned."""
    pillow_format = _pillow_format(mime)
    with _pillow_errors(pillow_format, limits=None):
        options = _format_options(source, pillow_format)
        with _open(source, pillow_format) as im:
            frames = _clean_frames(im, pillow_format)
            options |= _animation_options(im, frames, pillow_format)
        clean = _encode(frames, pillow_format, options)
    if dest is None:
        return clean
    dest.write(clean)
    return len(clean)


def _pillow_format(mime: str) -> str:
    try:
        return IMAGE_FORMATS[mime]
    except KeyError:
        raise UploadRejected(
            "image_invalid", f"The file's type ({mime}) is not an image type that can be checked."
        ) from None


def _display_name(pillow_format: str) -> str:
    return _DISPLAY_NAMES.get(pillow_format, pillow_format)


@contextlib.contextmanager
def _pillow_errors(pillow_format: str, limits: _Limits | None) -> Iterator[None]:
    """Turn anything Pillow raises into UploadRejected, with decompression-bomb warnings as errors.

    Pillow raises many types for hostile input (OSError, ValueError, SyntaxError, EOFError,
    struct.error, ...), and their messages may quote the file's bytes: none reaches the client.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except UploadRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadRejected("image_too_large", _bomb_detail(limits)) from None
        except MemoryError:  # the sandbox's memory limit: it says so, not "damaged"
            raise
        except Exception as exc:
            logger.info("image refused: %s: %.200r", type(exc).__name__, str(exc))
            raise UploadRejected(
                "image_invalid",
                f"The file is not a valid {_display_name(pillow_format)} image: "
                "it is damaged or truncated.",
            ) from None


def _bomb_detail(limits: _Limits | None) -> str:
    if limits is None:
        return "The image has more pixels than can be processed safely."
    return f"The image is larger than this upload accepts ({limits.phrase()})."


def _open(source: BinaryIO, pillow_format: str) -> Image.Image:
    """Open `source` lazily (header only) as `pillow_format` and no other format."""
    source.seek(0)
    name = _display_name(pillow_format)
    try:
        im = Image.open(source, formats=[pillow_format])
    except UnidentifiedImageError:
        raise UploadRejected(
            "image_invalid", f"The file is not a valid {name} image: its content is not {name}."
        ) from None
    if im.format != pillow_format and im.format not in _ALSO_REPORTED_AS.get(pillow_format, ()):
        im.close()
        raise UploadRejected(
            "image_invalid", f"The file is not a valid {name} image: its content is not {name}."
        )
    return im


def _frame_count(im: Image.Image) -> int:
    """How many frames (or pages) the file holds; Pillow counts them without decoding pixels.

    Call _frames_within_limit first: for a GIF or a TIFF, this walks every frame's header.
    """
    return getattr(im, "n_frames", 1)


def _frames_within_limit(im: Image.Image) -> int:
    """The frame count, refusing more than MAX_FRAMES without walking past the limit.

    Most formats state their frame count in a header. GIF and TIFF do not: Pillow's n_frames
    walks every frame header (seconds for 250,000 frames), so here the walk stops one frame past
    the limit. Nothing is decoded.
    """
    if isinstance(im, (GifImagePlugin.GifImageFile, TiffImagePlugin.TiffImageFile)):
        count = _frames_up_to(im, MAX_FRAMES + 1)
    else:
        count = _frame_count(im)
    if count > MAX_FRAMES:
        raise UploadRejected(
            "image_too_large",
            f"The image has more than {MAX_FRAMES:,} frames; this upload accepts at most "
            f"{MAX_FRAMES:,}.",
        )
    return count


def _frames_up_to(im: Image.Image, stop: int) -> int:
    """Frames counted one header at a time, up to `stop`, then back to the frame it was on.

    A GIF frame's header is read as n_frames reads it (Pillow's own `_seek` with no image update;
    its `seek` would decode every frame on the way); a TIFF's seek reads the page's directory and
    decodes nothing. One frame at a time: seeking a TIFF far past its end miscounts its pages.
    """
    current = im.tell()
    count = current + 1
    try:
        while count < stop:
            if isinstance(im, GifImagePlugin.GifImageFile):
                im._seek(count, False)
            else:
                im.seek(count)
            count += 1
    except EOFError:
        pass
    finally:
        im.seek(current)
    return count


def _check_header(im: Image.Image, limits: _Limits) -> None:
    """Refuse from the header alone: one frame's size first, then the frame count, then the size
    times the frames."""
    width, height = im.size
    if width < 1 or height < 1:
        raise UploadRejected("image_invalid", "The image has no pixels.")
    _refuse_if_too_large(width, height, 1, limits)
    _refuse_if_too_large(width, height, _frames_within_limit(im), limits)


def _refuse_if_too_large(width: int, height: int, frames: int, limits: _Limits) -> None:
    if max(width, height) <= limits.max_side and width * height * frames <= limits.max_pixels:
        return
    size = f"{width} \N{MULTIPLICATION SIGN} {height} pixels"
    if frames > 1:
        size += f" in {frames} frames ({width * height * frames:,} pixels in all)"
    raise UploadRejected(
        "image_too_large", f"The image is {size}; this upload accepts {limits.phrase()}."
    )


def _decode_every_frame(im: Image.Image, limits: _Limits) -> None:
    """Decode each frame, checking its size first: a GIF frame can grow the canvas, and each
    TIFF page (or MPO image) has a size of its own."""
    decoded_pixels = 0
    for index in range(_frame_count(im)):
        im.seek(index)
        width, height = im.size
        decoded_pixels += width * height
        if max(width, height) > limits.max_side or decoded_pixels > limits.max_pixels:
            raise UploadRejected(
                "image_too_large",
                f"The image's frames add up to more than this upload accepts ({limits.phrase()}).",
            )
        im.load()


def _clean_frames(im: Image.Image, pillow_format: str) -> list[Image.Image]:
    """Every frame worth keeping (at most MAX_FRAMES), each a fresh image holding pixels and no
    metadata."""
    count = _frames_within_limit(im) if pillow_format in _MULTI_FRAME_FORMATS else 1
    frames = []
    for index in range(count):
        im.seek(index)
        frames.append(_pixels_only(im, pillow_format))
    return frames


def _pixels_only(frame: Image.Image, pillow_format: str) -> Image.Image:
    """The current frame turned upright by its EXIF orientation, with an info of transparency and
    duration only (Pillow's savers fall back to `info` for EXIF, ICC profiles and comments)."""
    upright = ImageOps.exif_transpose(frame)  # a new plain Image, pixels loaded
    upright.info = {key: frame.info[key] for key in _FRAME_INFO_KEPT if key in frame.info}
    return _in_saveable_mode(upright, pillow_format)


def _in_saveable_mode(image: Image.Image, pillow_format: str) -> Image.Image:
    """`image` itself, or converted when the format cannot store its mode (the GIF, WebP and AVIF
    savers convert by themselves; PNG stores every mode Pillow reads from a PNG)."""
    if pillow_format == "JPEG" and image.mode not in _JPEG_MODES:
        return image.convert("RGB")
    if pillow_format == "TIFF" and image.mode not in TiffImagePlugin.SAVE_INFO:
        return image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return image


def _format_options(source: BinaryIO, pillow_format: str) -> dict[str, Any]:
    """The encoder settings for one format: quality, or lossless where the source was."""
    if pillow_format == "JPEG":
        return {"quality": JPEG_QUALITY}
    if pillow_format == "WEBP":
        source.seek(0)
        if _webp_is_lossless(source.read()):
            return {"lossless": True}
        return {"quality": WEBP_QUALITY}
    if pillow_format == "AVIF":
        return {"quality": AVIF_QUALITY}
    if pillow_format == "TIFF":
        return {"compression": TIFF_COMPRESSION}
    return {}


def _webp_is_lossless(data: bytes) -> bool:
    """Whether every image in a WebP file is VP8L (lossless) and none VP8 (lossy)."""
    kinds = set(_webp_bitstream_kinds(data, 12, len(data)))
    return kinds == {b"VP8L"}


def _webp_bitstream_kinds(data: bytes, start: int, end: int) -> Iterator[bytes]:
    """The fourcc of each image bitstream chunk in a RIFF chunk list, looking into ANMF frames."""
    pos = start
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        body = pos + 8
        size = int.from_bytes(data[pos + 4 : body], "little")
        if fourcc in (b"VP8 ", b"VP8L"):
            yield fourcc
        elif fourcc == b"ANMF":  # 16 bytes of frame header, then the frame's own chunks
            yield from _webp_bitstream_kinds(data, body + 16, min(body + size, end))
        pos = body + size + (size & 1)


def _animation_options(
    im: Image.Image, frames: list[Image.Image], pillow_format: str
) -> dict[str, Any]:
    """What keeps frames, their durations and the loop count (nothing for a single frame)."""
    if len(frames) < 2:
        return {}
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:]}
    durations = [frame.info.get("duration") for frame in frames]
    if pillow_format != "TIFF" and None not in durations:
        options["duration"] = durations
    if pillow_format != "TIFF" and "loop" in im.info:
        options["loop"] = im.info["loop"]
    if pillow_format == "PNG":
        # An APNG's default image may stand outside the animation; keep it there.
        options["default_image"] = bool(im.info.get("default_image", False))
    if pillow_format == "GIF" and _has_transparency(frames):
        # Pillow composites each frame in full; clearing to the (transparent) background before
        # the next lets a pixel turn transparent again.
        options["disposal"] = 2
    return options


def _has_transparency(frames: list[Image.Image]) -> bool:
    return any("transparency" in frame.info or frame.mode == "RGBA" for frame in frames)


def _encode(frames: list[Image.Image], pillow_format: str, options: dict[str, Any]) -> bytes:
    """The frames written as a fresh file."""
    out = io.BytesIO()
    frames[0].save(out, pillow_format, **options)
    return out.getvalue()
