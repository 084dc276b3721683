"""Schemathesis hooks for bench/fuzz.py (loaded as SCHEMATHESIS_HOOKS=bench.fuzz_hooks).

The service documents its upload parts by media type (image/jpeg ... image/tiff, video/mp4 ...).
Schemathesis has no generator for most of them, so such a part would be random bytes, which the
service rightly refuses (415: not a readable image) although the schema admits any file of that
type. This registers a real file for each type the fuzz sends: a small image per accepted image
format (Pillow) and a 1 s MP4 (PyAV).

A schema cannot say which bytes make a readable image or video, and schemathesis also sends other
bytes for file parts (random ones, an empty file, its PNG sample as a video). Two rules keep the
run about what the schema does say, each as narrow as the gap:
- ST202 (valid data rejected) is dropped only when some file part held bytes that are no real file
  of its kind: no readable image in an `image` part (or in /knn-service's base64 `image`), not the
  MP4 above in a `video` part (`filter_failure`); with real files, every rejection still counts;
Two patches for schemathesis 4.x bugs on multipart forms:
- its coverage phase builds one "valid" form per operation with custom media types, filling every
  other required field with "" whatever its schema says (minLength, pattern); such a field gets its
  documented example instead (`_form_with_examples`);
- its test of whether a "negative" form is in fact valid as sent (text parts read as the server
  reads them; `_form_body_is_valid_as_sent`) hands the file parts' bytes to jsonschema_rs, which
  raises on them, so every such form counts as invalid and a valid one accepted becomes an ST201;
  the test gets each file part as a text of the same length instead (`_files_as_text`).
"""

import base64
import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.specs.openapi import checks
from schemathesis.specs.openapi.coverage import _operation as coverage

IMAGE_FORMATS = {
    "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF",
    "image/bmp": "BMP", "image/tiff": "TIFF",
}  # fmt: skip


def tiny_image(fmt: str, size: tuple[int, int] = (24, 16)) -> bytes:
    """A seeded noise image of `size` in Pillow format `fmt`."""
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def tiny_mp4(seconds: int = 1, fps: int = 4, size: int = 32) -> bytes:
    """A `seconds` long MP4 (MPEG-4 part 2, yuv420p) of seeded noise frames, encoded by PyAV."""
    import av

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(seconds * fps):
            frame = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


MP4 = tiny_mp4()
for media_type, fmt in IMAGE_FORMATS.items():
    schemathesis.openapi.media_type(media_type, st.just(tiny_image(fmt)))
schemathesis.openapi.media_type("video/mp4", st.just(MP4))


_coverage_form = coverage._generate_multipart_body_from_custom_strategies


def _form_with_examples(body):
    made = _coverage_form(body)
    if made is not None:
        values, _ = made
        for name, prop in body.form_properties.items():
            if values.get(name) == "" and prop.get("examples"):
                values[name] = prop["examples"][0]
    return made


coverage._generate_multipart_body_from_custom_strategies = _form_with_examples

_valid_as_sent = checks._form_body_is_valid_as_sent


def _files_as_text(response, case, media_type):
    body = case.body
    if not isinstance(body, dict):
        return _valid_as_sent(response, case, media_type)
    case.body = {k: "x" * len(getattr(v, "data", v)) if _is_file_value(v) else v for k, v in body.items()}
    try:
        return _valid_as_sent(response, case, media_type)
    finally:
        case.body = body


def _is_file_value(value) -> bool:
    return isinstance(value, bytes) or hasattr(value, "data")  # bytes, or schemathesis's Binary


checks._form_body_is_valid_as_sent = _files_as_text


def _is_real_file(field: str, data: bytes) -> bool:
    """A readable image (any Pillow opens, schemathesis's samples too) in an image part, this MP4 in
    a video part."""
    if field == "video":
        return data == MP4
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for bytes that are no image
        return False
    return True


def _sent_other_bytes(case) -> bool:
    """Whether a file part of the case (or /knn-service's base64 `image` in JSON) held bytes that are
    not a real file of its kind."""
    body = case.body if isinstance(case.body, dict) else {}
    files = {k: getattr(v, "data", v) for k, v in body.items() if _is_file_value(v)}
    if isinstance(body.get("image"), str) and body["image"]:
        try:
            files["image"] = base64.b64decode(body["image"], validate=True)
        except ValueError:  # binascii.Error: not even base64
            return True
    return any(not _is_real_file(k, data) for k, data in files.items())


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    return not (failure.code == "ST202" and _sent_other_bytes(case))
