"""Schemathesis hooks for bench/fuzz.py (loaded as SCHEMATHESIS_HOOKS=bench.fuzz_hooks).

The service documents its upload parts by media type (image/jpeg ... image/tiff, video/mp4 ...).
Schemathesis has no generator for most of them, so such a part would be random bytes, which the
service rightly refuses (415: not a readable image) although the schema admits any file of that
type. This registers a real file for each type the fuzz sends: a small image per accepted image
format (Pillow) and a 1 s MP4 (PyAV).

Two workarounds for schemathesis 4.x on multipart bodies, each kept as narrow as the bug:
- its coverage phase builds one "valid" form per operation with custom media types, filling every
  other required field with "" whatever its schema says (minLength, pattern); such a field gets
  its documented example instead (`_form_with_examples`);
- a negative case that only changes the type of form parts is sent as text all the same (an object
  as "{}", a boolean as "false", an empty array as no part), which the field may rightly take; its
  ST201 is dropped (`filter_failure`), every other failure kept. (Schemathesis's own test of how a
  form reads as sent gives up on forms with a file part.)
"""

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image
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


for media_type, fmt in IMAGE_FORMATS.items():
    schemathesis.openapi.media_type(media_type, st.just(tiny_image(fmt)))
schemathesis.openapi.media_type("video/mp4", st.just(tiny_mp4()))


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


def _only_form_parts_retyped(case) -> bool:
    mutations = getattr(getattr(case.meta, "phase", None), "data", None)
    mutations = getattr(mutations, "mutations", None)
    return (
        bool(mutations)
        and (case.media_type or "").startswith("multipart/")
        and all(
            m.operator == "change_type" and m.parameter_location == "body" and m.original_value == "string"
            for m in mutations
        )
    )


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    return not (failure.code == "ST201" and _only_form_parts_retyped(case))
