"""Video frames with PyAV: frames sampled uniformly over the whole video and per fixed-length segment.

    sample_video("clip.mp4", VideoConfig(segment_seconds=5)) -> VideoSample
        .frames    video_frames PIL images spread uniformly over the video
        .segments  [(start_s, end_s, [frames_per_segment PIL images]), ...]

One sequential decode serves every sample time (no seeking: keyframe seeks land far from the
target in sparse-keyframe codecs); each chosen frame is downscaled by PyAV as it is converted to PIL,
so an 8K video holds small frames only (plus the decoder's current one). Decoding stops at
`max_seconds` or `max_frames` decoded frames, whichever comes first: a longer video is indexed over
its first `max_seconds`, so no video can take unbounded time or memory.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


@dataclass
class VideoConfig:
    segment_seconds: float = 5.0  # length of one searchable moment
    frames_per_segment: int = 4  # frames averaged into one segment vector
    video_frames: int = 8  # frames averaged into the whole-video vector
    max_segments: int = 32  # long videos get longer segments rather than more of them
    decode_size: int = 256  # sampled frames are scaled so their short side is at most this (pixels)
    max_seconds: float = 3600.0  # only the first hour of a video is indexed
    max_frames: int = 200_000  # decoded frames per video, at most (about 1.8 h at 30 fps)


@dataclass
class VideoSample:
    duration: float  # seconds
    frames: list[Image.Image]
    segments: list[tuple[float, float, list[Image.Image]]] = field(default_factory=list)


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _frame_times(path: Path, cfg: VideoConfig) -> list[float]:
    """Presentation times of the frames within the caps (a decode pass, for files whose header has no
    duration)."""
    import av

    times = []
    with av.open(str(path)) as container:
        for n, f in enumerate(container.decode(video=0)):
            if n >= cfg.max_frames or (f.time is not None and f.time > cfg.max_seconds):
                break
            if f.time is not None:
                times.append(f.time)
    return times


def small_image(frame, size: int) -> Image.Image:
    """A PyAV frame as a PIL image whose short side is at most `size` (scaled by libswscale)."""
    scale = min(1.0, size / max(1, min(frame.width, frame.height)))
    w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    return frame.to_image(width=w, height=h)


def segment_bounds(duration: float, cfg: VideoConfig) -> list[tuple[float, float]]:
    """[(start, end)] covering [0, duration]: segment_seconds each, at most max_segments of them."""
    length = max(cfg.segment_seconds, duration / cfg.max_segments)
    n = max(1, math.ceil(duration / length - 1e-6))
    return [(i * length, min((i + 1) * length, duration)) for i in range(n)]


def sample_video(path: str | Path, cfg: VideoConfig) -> VideoSample:
    """Decodes `path` once and picks frames at the sample times; raises on unreadable files
    (callers skip and report them)."""
    import av

    path = Path(path)
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        duration = _duration(container, stream)
    if duration is None:
        times = _frame_times(path, cfg)
        if not times:
            raise ValueError("no decodable frames")
        duration = times[-1] - times[0] + 1e-3
    duration = min(duration, cfg.max_seconds)
    bounds = segment_bounds(duration, cfg)
    # sample times (seconds from the first frame) -> slot: ("v", i) whole video, (j, i) segment j
    targets = [((i + 0.5) * duration / cfg.video_frames, ("v", i)) for i in range(cfg.video_frames)]
    for j, (s, e) in enumerate(bounds):
        targets += [
            (s + (i + 0.5) * (e - s) / cfg.frames_per_segment, (j, i)) for i in range(cfg.frames_per_segment)
        ]
    targets.sort(key=lambda t: t[0])
    picked: dict[tuple, Image.Image] = {}
    t0, last, pos = None, None, 0
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n >= cfg.max_frames:
                break
            t = frame.time if frame.time is not None else (0.0 if last is None else last[0] + 1 / 30)
            t0 = t if t0 is None else t0
            image = None
            while pos < len(targets) and t - t0 >= targets[pos][0]:
                image = image or small_image(frame, cfg.decode_size)
                picked[targets[pos][1]] = image
                pos += 1
            last = (t, frame)
            if pos == len(targets):
                break
    if last is None:
        raise ValueError("no decodable frames")
    if pos < len(targets):  # times past the last frame take the last frame
        tail = small_image(last[1], cfg.decode_size)
        for _, slot in targets[pos:]:
            picked[slot] = tail
    return VideoSample(
        duration=duration,
        frames=[picked[("v", i)] for i in range(cfg.video_frames)],
        segments=[
            (s, e, [picked[(j, i)] for i in range(cfg.frames_per_segment)]) for j, (s, e) in enumerate(bounds)
        ],
    )
