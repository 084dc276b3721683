"""Uploaded images in (checked from their bytes) and media files out (thumbnails, video posters)."""

import asyncio
import base64
import binascii
import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from app.batching import QueueFullError
from app.config import LimitSettings
from training.errors import XModalError

# Pillow plugins tried on an upload (no other decoder ever sees its bytes); MPO (phone photos) opens
# through the JPEG plugin. Formats as Pillow names them on the opened image.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ACCEPTED_FORMATS = (*OPEN_FORMATS, "MPO")
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP, TIFF or MPO"
MAX_ASPECT = 4  # wider (or taller) images are padded to this ratio: a 10000x1 strip must not become 2M x 224
THUMB_SIZE = 256


class BadInputError(XModalError):
    """A request field that breaks a documented limit or format (HTTP 400/413/415/422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, limits: LimitSettings, field: str = "image") -> Image.Image:
    """An RGB (or RGBA, with transparency) PIL image from uploaded bytes, at most
    `limits.decode_max_side` on its longer side and at most MAX_ASPECT:1.

    Size, format and pixel count are checked from the header before any pixel is decoded; JPEGs are
    decoded at a reduced DCT scale (Image.draft) when they are large. Blocking: run it in a worker
    (ImageDecoder)."""
    if not data:
        raise BadInputError(f"{field}: empty upload; send a {ACCEPTED} image")
    if len(data) > limits.max_upload_bytes:
        raise BadInputError(
            f"{field}: {len(data)} bytes is over the upload limit of {limits.max_upload_bytes} bytes", 413
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # PIL's own, higher limit
        raise BadInputError(
            f"{field}: too many pixels; the limit is {limits.max_image_pixels} pixels", 413
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInputError(f"{field}: not a readable image; send a {ACCEPTED} image", 415) from None
    if im.format not in ACCEPTED_FORMATS:
        raise BadInputError(f"{field}: format {im.format} not accepted; send a {ACCEPTED} image", 415)
    w, h = im.size
    if w * h > limits.max_image_pixels:
        raise BadInputError(
            f"{field}: {w}x{h} = {w * h} pixels is over the limit of {limits.max_image_pixels} pixels", 413
        )
    side = limits.decode_max_side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.draft("RGB", (side, side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, never below `side`
            im.load()
            im = _to_rgb(im)
            im.thumbnail((side, side), reducing_gap=2.0)  # reduce() by an integer factor, then resample
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:  # fmt: skip
        raise BadInputError(f"{field}: broken {im.format} data ({e})", 422) from None
    return _pad_aspect(im)


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency; 16- and 32-bit greys scaled to 8 bits, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        hi = max(im.getextrema()[1], 1)
        im = im.convert("I").point(lambda v: v * 255 / hi).convert("L")
    elif im.mode == "F":
        lo, hi = im.getextrema()
        im = im.point(lambda v: (v - lo) * 255 / ((hi - lo) or 1)).convert("L")
    transparent = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    return im.convert("RGBA" if transparent else "RGB")


def _pad_aspect(im: Image.Image) -> Image.Image:
    """Padded with white to at most MAX_ASPECT:1, centred."""
    w, h = im.size
    if max(w, h) <= MAX_ASPECT * min(w, h):
        return im
    size = (w, max(h, -(-w // MAX_ASPECT))) if w > h else (max(w, -(-h // MAX_ASPECT)), h)
    canvas = Image.new(im.mode, size, (255,) * len(im.mode))
    canvas.paste(im, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


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


class ImageDecoder:
    """Decodes uploads in a bounded pool of worker threads, off the event loop (Pillow releases the GIL
    while it decodes). More than `limits.decode_queue` uploads decoding or waiting: QueueFullError (503)."""

    def __init__(self, limits: LimitSettings):
        self.limits = limits
        self._pool = ThreadPoolExecutor(limits.decode_workers, thread_name_prefix="decode")
        self._pending = 0  # touched on the event loop only

    async def decode(self, data: bytes | str, field: str = "image") -> Image.Image:
        """decode_image (bytes) or decode_b64_image (str) in the pool."""
        if self._pending >= self.limits.decode_queue:
            raise QueueFullError(
                f"{field}: {self._pending} uploads already decoding (XMODAL_LIMITS__DECODE_QUEUE); "
                "retry shortly"
            )
        fn = decode_b64_image if isinstance(data, str) else decode_image
        self._pending += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, data, self.limits, field))
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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
        if duration is not None and target > duration:  # also keeps the seek below within int64
            raise BadInputError(f"t: {target:g} s is past the end; the video lasts {duration:g} s")
        if target > 0:
            container.seek(int(target / stream.time_base), stream=stream, any_frame=False, backward=True)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= target - 1e-3:
                return frame.to_image()
    # the client's `t` (never the server's file) is what to fix
    lasts = f"; the video lasts {duration:g} s" if duration else ""
    raise BadInputError(f"t: no video frame at or after {target:g} s{lasts}")
