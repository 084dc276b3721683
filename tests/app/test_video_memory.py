"""Decoding a long, large video for the video routes keeps memory bounded: frames are scaled down at
decode, and a sample holds a fixed number of them whatever the video's length.

Measured in a fresh process (its peak resident size before and after the decode), so the test's own
memory does not count. Full-size frames would need about 136 x 2.8 MB = 375 MB here (measured: 520 MB);
scaled to 512 px they took 110 MB.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.videos import write_colour_video

pytestmark = pytest.mark.slow
BOUND_MB = 200

CHILD = """
import json, resource, sys
from pathlib import Path
from app.config import VideoLimitSettings
from app.routes.video import _sample
from training.video import VideoConfig

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sample = _sample(Path(sys.argv[1]), VideoConfig(), VideoLimitSettings())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = [f for _, _, fs in sample.segments for f in fs] + sample.frames
kept = {id(f): f.size for f in frames}  # distinct images held
largest = max(max(size) for size in kept.values())
print(json.dumps({"grew_mb": (after - before) / 1024, "duration": sample.duration,
                  "segments": len(sample.segments), "kept": len(kept), "largest": largest}))
"""


def test_decoding_a_long_720p_video_stays_under_the_memory_bound(tmp_path):
    path = write_colour_video(
        tmp_path / "long.mp4",
        [(200, 30, 30), (30, 30, 200)] * 4,
        seconds_each=20,
        fps=1,
        size=(1280, 720),
        noise=0,
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["duration"] == pytest.approx(160, abs=1.5)
    assert got["segments"] == 32 and got["kept"] > 100, got  # the sample really holds many frames
    assert got["largest"] <= 512, got  # scaled at decode
    assert got["grew_mb"] < BOUND_MB, got
