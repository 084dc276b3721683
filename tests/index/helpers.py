"""Helpers for index tests: tiny corpora (PIL images, PyAV-encoded videos, broken files), a
brute-force reference search, and the CLI run in a subprocess that SIGKILLs itself at a chosen point."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

COLORS = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (250, 250, 0), (0, 220, 220), (220, 0, 220), (128, 128, 128)]


def make_image(path: Path, seed: int, size: int = 48) -> None:
    """A colour block with seeded noise, so every image embeds differently."""
    rng = np.random.default_rng(seed)
    base = np.array(COLORS[seed % len(COLORS)], dtype=np.float32)
    arr = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)


def make_video(
    path: Path, seconds: float, fps: int = 8, size: int = 32, codec: str = "mpeg4", seed: int = 0
) -> None:
    """A video whose colour changes every 2 s (so segments differ), encoded offline with PyAV."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            color = np.array(COLORS[(seed + i // (2 * fps)) % len(COLORS)], dtype=np.float32)
            arr = np.clip(color + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_corpus(root: Path, n_images: int, n_videos: int = 0, broken: bool = False, start: int = 0) -> Path:
    """media/ + manifest.jsonl; `broken` adds a truncated PNG and a garbage .mp4 to the manifest."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(start, start + n_images):
        make_image(media / f"img{i}.png", i)
        split = "test" if i % 3 == 0 else "train"
        lines.append(
            {
                "id": f"img{i}",
                "path": f"media/img{i}.png",
                "captions": [f"picture {i}"],
                "split": split,
                "meta": {"n": i},
            }
        )
    for v in range(n_videos):
        make_video(media / f"vid{v}.mp4", seconds=5 + v, seed=v)
        lines.append(
            {
                "id": f"vid{v}",
                "path": f"media/vid{v}.mp4",
                "media": "video",
                "captions": [f"clip {v}"],
                "meta": {"n": 100 + v},
            }
        )
    if broken:
        make_image(media / "bad.png", 99)
        (media / "bad.png").write_bytes((media / "bad.png").read_bytes()[:60])
        (media / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
        lines.append({"id": "bad-image", "path": "media/bad.png"})
        lines.append({"id": "bad-video", "path": "media/bad.mp4", "media": "video"})
        lines.append({"id": "missing", "path": "media/nope.png"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def brute_force(vectors: np.ndarray, rows, q: np.ndarray, k: int, keep=lambda r: True) -> list[tuple]:
    """Reference search: every row scored, each item by its best row, with its best segment's start.
    Returns [(item_id, score, start)] best first."""
    scores = vectors @ q
    best: dict[str, tuple[float, object]] = {}
    seg: dict[str, tuple[float, object]] = {}
    for r, s in zip(rows, scores, strict=True):
        if not keep(r):
            continue
        if r.item_id not in best or s > best[r.item_id][0]:
            best[r.item_id] = (s, r)
        if r.start is not None and (r.item_id not in seg or s > seg[r.item_id][0]):
            seg[r.item_id] = (s, r)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
    return [(item, s, seg[item][1].start if item in seg else None) for item, (s, _) in ranked]


# Runs `index.cli` with one stage wrapped so that its (n+1)-th call SIGKILLs the process; stage "timer"
# kills it `n` milliseconds after the job starts. Either way a run that gets as far as set_current
# before its kill point dies there, so every run but stage "none" is killed.
KILLER = textwrap.dedent(
    """
    import os, signal, sys, threading
    import index.publish, index.runner
    stage, n = sys.argv[1], int(sys.argv[2])
    STAGES = {  # stage -> (module, function, kill after the call rather than before)
        "shard": (index.runner, "_write_shard", False),  # before a chunk's shard is written
        "journal": (index.runner, "_write_shard", True),  # a shard in place, not yet journalled
        "fsync": (index.publish, "publish_dir", False),  # a version's files written, not fsynced nor renamed
        "rename": (index.publish, "publish_dir", True),  # the version renamed into place, CURRENT not moved
        "current": (index.publish, "set_current", False),  # just before CURRENT moves
    }
    def kill():
        os.kill(os.getpid(), signal.SIGKILL)
    if stage == "timer":
        threading.Timer(n / 1000, kill).start()
        stage, n = "current", 0
    if stage not in ("none", "current"):  # a run that never reaches its kill point dies publishing
        publish = index.publish.set_current
        index.publish.set_current = lambda *a, **k: kill()
    if stage in STAGES:
        module, attr, after = STAGES[stage]
        original, calls = getattr(module, attr), []
        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) > n and not after:
                kill()
            out = original(*args, **kwargs)
            if len(calls) > n:
                kill()
            return out
        setattr(module, attr, wrapped)
    from index.cli import main
    main(sys.argv[3:])
    """
)


def run_killed(tmp_path: Path, stage: str, n: int, args: list[str]) -> subprocess.CompletedProcess:
    """`python -m index.cli ARGS` in a subprocess that SIGKILLs itself at `stage` (see KILLER);
    stage "none" runs it to the end. XMODAL_HOME comes from the environment."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), stage, str(n), *args], env=env, capture_output=True)
