"""Generated videos for the video route tests: flat colour runs, a PyAV cut, and bad files."""

from pathlib import Path

import numpy as np


def write_colour_video(
    path: Path,
    colours: list[tuple[int, int, int]],
    seconds_each: float = 2.0,
    fps: int = 8,
    size: tuple[int, int] = (32, 32),
    codec: str = "mpeg4",
    noise: float = 8.0,
    fmt: str | None = None,
) -> Path:
    """`seconds_each` of every colour in turn (seeded noise so frames are not identical), encoded offline."""
    import av

    rng = np.random.default_rng(len(colours))
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for colour in colours:
            for _ in range(round(seconds_each * fps)):
                arr = np.array(colour, np.float32) + (rng.normal(0, noise, (h, w, 3)) if noise else 0)
                arr = np.clip(np.broadcast_to(arr, (h, w, 3)), 0, 255)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(arr.astype(np.uint8), format="rgb24")))
        out.mux(stream.encode())
    return path


def cut_clip(src: Path, dst: Path, start: float, end: float) -> Path:
    """The frames of `src` shown in [start, end) seconds, re-encoded into a new file with PyAV."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        stream = out.add_stream("mpeg4", rate=round(float(s.average_rate or 8)) or 8)  # whole-number rate
        stream.width, stream.height, stream.pix_fmt = s.width, s.height, "yuv420p"
        for frame in inp.decode(s):
            if start - 1e-6 <= frame.time < end - 1e-6:
                out.mux(
                    stream.encode(
                        av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                    )
                )
        out.mux(stream.encode())
    return dst


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 holding one AAC audio stream and no video."""
    import av

    rate = 44100
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, i : i + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def write_zero_length(path: Path) -> Path:
    """A video stream with not one frame (give an .avi path: MP4 and Matroska drop an empty track)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        out.start_encoding()  # the header, although no packet follows
        out.mux(stream.encode())
    return path
