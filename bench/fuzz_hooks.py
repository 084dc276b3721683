"""Schemathesis hooks for bench/fuzz.py (loaded as SCHEMATHESIS_HOOKS=bench.fuzz_hooks).

Schemathesis ships file samples for images only, so a `video` part declared as video/mp4 would be
random bytes, which the service rightly refuses (422, not a video) although the schema admits any
upload of that type. This registers a real 1 s MP4 for video/mp4, the one video type the fuzz sends.
"""

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st


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


schemathesis.openapi.media_type("video/mp4", st.just(tiny_mp4()))
