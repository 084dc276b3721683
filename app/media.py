"""Uploaded images in (checked from their bytes) and media files out (thumbnails, video posters)."""

import base64
import binascii
import io
import warnings
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from app.config import LimitSettings
from training.errors import XModalError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
THUMB_SIZE = 256


class BadInputError(XModalError):
    """A request field that breaks a documented limit or format (HTTP 400/413/415/422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, limits: LimitSettings, field: str = "image") -> Image.Image:
    """An RGB PIL image from uploaded bytes; size, pixel count and format are checked before decoding."""
    if not data:
        raise BadInputError(f"{field}: empty upload; send a JPEG, PNG, WebP, GIF, BMP or TIFF image")
    if len(data) > limits.max_upload_bytes:
        raise BadInputError(
            f"{field}: {len(data)} bytes is over the upload limit of {limits.max_upload_bytes} bytes", 413
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # PIL's own, higher limit
        raise BadInputError(
            f"{field}: too many pixels; the limit is {limits.max_image_pixels} pixels", 413
        ) from None
    except (UnidentifiedImageError, OSError):
        raise BadInputError(
            f"{field}: not a readable image; accepted formats: {', '.join(ACCEPTED_FORMATS)}", 415
        ) from None
    if im.format not in ACCEPTED_FORMATS:
        raise BadInputError(
            f"{field}: format {im.format} not accepted; accepted: {', '.join(ACCEPTED_FORMATS)}", 415
        )
    w, h = im.size
    if w * h > limits.max_image_pixels:
        raise BadInputError(
            f"{field}: {w}x{h} = {w * h} pixels is over the limit of {limits.max_image_pixels} pixels", 413
        )
    try:
        im.load()
        return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise BadInputError(f"{field}: broken {im.format} data ({e})", 422) from None


def decode_b64_image(text: str, limits: LimitSettings, field: str = "image_b64") -> Image.Image:
    """Like decode_image, for base64 text (a `data:image/...;base64,` prefix is allowed)."""
    if not isinstance(text, str) or not text:
        raise BadInputError(f"{field}: empty; send base64-encoded image bytes")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > limits.max_upload_bytes * 4 // 3 + 4:
        raise BadInputError(f"{field}: over the upload limit of {limits.max_upload_bytes} bytes", 413)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInputError(f"{field}: not valid base64") from None
    return decode_image(data, limits, field)


VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".ogv", ".mpg", ".mpeg"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@lru_cache(maxsize=512)
def thumbnail_jpeg(path: str, mtime: float, at_s: float | None = None) -> bytes:
    """A JPEG thumbnail (longest side THUMB_SIZE) of an image, or a video's frame near `at_s` seconds.
    `mtime` is part of the cache key so a replaced file gets a fresh thumbnail."""
    im = video_frame(Path(path), at_s) if is_video(Path(path)) else _open_any(Path(path))
    im = im.convert("RGB")
    im.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _open_any(path: Path) -> Image.Image:
    if path.suffix.lower() == ".svg":
        import cairosvg

        png = cairosvg.svg2png(url=str(path), output_width=THUMB_SIZE * 2)
        return Image.open(io.BytesIO(png))
    return Image.open(path)


def video_frame(path: Path, at_s: float | None = None) -> Image.Image:
    """The first decodable frame at or after `at_s` seconds (default: the middle of the video)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        target = at_s if at_s is not None else (duration / 2 if duration else 0.0)
        if target > 0:
            container.seek(int(target / stream.time_base), stream=stream, any_frame=False, backward=True)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= target - 1e-3:
                return frame.to_image()
    raise XModalError(f"{path}: no decodable video frame")
