"""Text -> video retrieval on the videos corpus: hand-written queries (not the captions), R@1 and MRR
for each way of scoring a video from its vectors, side by side on one embedding pass.

    python bench/video.py [--model var/models/default | lit-effnet-minilm]

Vectors come from the index job's own decode/embed functions (index.embed) with its default video
settings: one whole-video vector (mean of 8 uniform frames) and one per 5 s segment (mean of 4).
Scorings: mean (whole vector only, the baseline); max over the segments; max over whole + segments
(what LoadedIndex.search does: an item scores by its best row); a soft max (log-mean-exp) over the
segments; a whole vector from the segments weighted
by how distinct each is from the video mean (softmax((1 - cos(segment, mean)) / TAU)), alone and with
the segments; each at the index job's default 5 s segments and at 2 s. A query counts as found when
the top video is one of its targets; near-duplicate twins (carphone / carphone-distorted, megamind /
megamind-glitchy) are both targets unless the query is about the distortion. Writes the `video`
section of BENCHMARKS.md.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402
from index.embed import decode_video, embed_video  # noqa: E402
from training.home import corpora_dir  # noqa: E402
from training.video import VideoConfig  # noqa: E402

# Written after looking at sampled frames of each video; none repeats its caption's wording.
C, CD, M, MG = "videos/carphone", "videos/carphone-distorted", "videos/megamind", "videos/megamind-glitchy"
QUERIES = [
    ("a chubby furry animal stretching its arms", ["videos/bigbuckbunny"]),
    ("a fluffy white creature by a hole in a mossy bank", ["videos/bigbuckbunny"]),
    ("an animated bunny yawning in the forest", ["videos/bigbuckbunny"]),
    ("a bicycle leaning against the wall of a house", ["videos/bikes"]),
    ("a man in a dark suit walking between cars", ["videos/bikes"]),
    ("a metal railing beside a road with cars passing", ["videos/bikes"]),
    ("a young man with a red bow tie sitting in a car", [C, CD]),
    ("a guy speaking to the camera in the back seat of a vehicle", [C, CD]),
    ("a blocky, low-quality clip of a man in a car", [CD]),
    ("a cartoon woman in a purple dress holding a champagne glass", [M, MG]),
    ("an animated man with glasses and a blue turtleneck", [M, MG]),
    ("candles glowing on tables in a dark restaurant", [M, MG]),
    ("a corrupted, glitching animation of a date", [MG]),
    ("people strolling on a path next to a green lawn", ["videos/pedestrians"]),
    ("a white van parked in front of a brick building", ["videos/pedestrians"]),
    ("a camera tripod standing on the grass", ["videos/pedestrians"]),
    ("sunlight shining through the leaves of a tree", ["videos/tree"]),
    ("a hand held up in front of a bright window", ["videos/tree"]),
    ("green foliage seen past a window frame", ["videos/tree"]),
    ("a grey rock and a low stone wall on a meadow", ["videos/bigbuckbunny"]),
    ("a big-bellied cartoon character with long ears", ["videos/bigbuckbunny"]),
    ("the red brake lights of a car up close", ["videos/bikes"]),
    ("a narrow street of old town houses", ["videos/bikes"]),
    ("a man in a tie riding a bicycle", ["videos/bikes"]),
    ("striped seat covers behind a man in a car", [C, CD]),
    ("a smiling woman raising a glass at dinner", [M, MG]),
    ("a person in a red jacket crossing a square", ["videos/pedestrians"]),
    ("a small yellow object lying on the grass", ["videos/pedestrians"]),
    ("a security camera view of a campus walkway", ["videos/pedestrians"]),
    ("a window pane with a tree outside on a bright day", ["videos/tree"]),
]


TAU = 0.05  # softmax temperature over (1 - cosine): smaller lets the most distinct segment dominate
SOFT_T = 0.05  # log-mean-exp temperature over segment scores: 0 is the max, large is the mean


def distinct_video_vector(segments: np.ndarray, tau: float = TAU) -> np.ndarray:
    """(S, D) normalised segment vectors -> (D,): weighted by distinctness from their normalised mean."""
    mean = segments.mean(0)
    mean = mean / (np.linalg.norm(mean) or 1.0)
    z = (1.0 - segments @ mean) / tau
    w = np.exp(z - z.max())
    v = (w / w.sum()) @ segments
    return v / (np.linalg.norm(v) or 1.0)


def load(ref: str):
    from training.factory import create_model, list_models, load_model

    if (Path(ref) / "config.json").is_file():
        from training.factory import read_card

        card = read_card(ref)
        corpora = ", ".join((card.get("data") or {}).get("corpora", [])) or "?"
        trained = f"{card.get('model', '?')} trained on {corpora}"
        return load_model(ref), f"{Path(ref).name} ({trained}, {card.get('steps', '?')} steps)"
    if ref in list_models():
        return create_model(ref).eval(), f"{ref} (untrained: pretrained towers + bridge)"
    raise SystemExit(f"--model {ref}: not a model dir or a registry name ({', '.join(list_models())})")


def scorings(whole: np.ndarray, segs: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """name -> one video's (Q,) scores for the queries q (Q, D); whole (D,), segs (S, D)."""
    distinct = distinct_video_vector(segs)
    per_seg = segs @ q.T  # (S, Q)
    return {
        "mean of frames (baseline)": q @ whole,
        "max over segments": per_seg.max(0),
        "max over whole + segments (search today)": np.maximum(q @ whole, per_seg.max(0)),
        f"soft max over segments (T={SOFT_T:g})": SOFT_T * np.log(np.exp(per_seg / SOFT_T).mean(0)),
        "distinct-weighted": q @ distinct,
        "max over distinct-weighted + segments": np.maximum(q @ distinct, per_seg.max(0)),
    }


def clip_search(model, items: list[dict], root: Path, work: Path) -> list[tuple[str, str, bool]]:
    """A 2 s clip cut with PyAV from the middle of each video, embedded as /v1/search/video embeds it,
    scored as the search scores items (best row): [(video, top video, top's best segment overlaps)]."""
    from tests.app.videos import cut_clip

    cfg = VideoConfig()
    rows = {}  # id -> (vectors (1 + S, D), segment bounds)
    for it in items:
        decoded = decode_video(str(root / it["path"]), model.preprocess, cfg)
        whole, segs = embed_video(model, decoded)
        rows[it["id"]] = (np.vstack([whole, segs]), decoded.bounds)
    out = []
    for it in items:
        mid = it["meta"]["duration"] / 2
        clip = cut_clip(root / it["path"], work / "clip.mp4", mid - 1, mid + 1)
        q, _ = embed_video(model, decode_video(str(clip), model.preprocess, cfg))
        best = max(rows, key=lambda i: float((rows[i][0] @ q).max()))
        vecs, bounds = rows[best]
        s, e = bounds[int(np.argmax(vecs[1:] @ q))]
        out.append((it["id"], best, s < mid + 1 and e > mid - 1))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="var/models/default")
    p.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    args = p.parse_args(argv)
    model, model_name = load(args.model)
    manifest = corpora_dir() / "videos" / "manifest.jsonl"
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    q = model.embed_texts([t for t, _ in QUERIES]).numpy()  # (Q, D)
    lengths = (5.0, 2.0)
    results: dict[str, dict[float, dict]] = {}
    t0 = time.perf_counter()
    for seconds in lengths:
        cfg = VideoConfig(segment_seconds=seconds)
        vectors = {}
        for it in items:
            decoded = decode_video(str(manifest.parent / it["path"]), model.preprocess, cfg)
            vectors[it["id"]] = embed_video(model, decoded)
        ids = list(vectors)
        scored = [scorings(*vectors[i], q) for i in ids]
        for name in scored[0]:
            per_video = [sc[name] for sc in scored]
            ranks = []
            for (_, targets), row in zip(QUERIES, np.stack(per_video, 1), strict=True):  # row: (V,)
                order = [ids[j] for j in np.argsort(-row, kind="stable")]
                ranks.append(min(order.index(t) for t in targets) + 1)
            ranks = np.array(ranks)
            r = {
                "found": int((ranks == 1).sum()),
                "r1": float((ranks == 1).mean()),
                "mrr": float((1 / ranks).mean()),
            }
            results.setdefault(name, {})[seconds] = r
            print(f"{seconds:g} s  {name:45s} R@1 {r['r1']:.3f}  MRR {r['mrr']:.3f}")
    embed_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as work:
        clips = clip_search(model, items, manifest.parent, Path(work))
    clip_rows = "\n".join(f"| {v} | {top} | {'yes' if hit else 'no'} |" for v, top, hit in clips)
    first = sum(v == top for v, top, _ in clips)
    moment = sum(v == top and hit for v, top, hit in clips)
    cfg = VideoConfig()
    n = len(QUERIES)
    cells = [" | ".join(f"{r[s]['found']}/{n} = {r[s]['r1']:.2f} | {r[s]['mrr']:.3f}" for s in lengths)
             for r in results.values()]  # fmt: skip
    rows = "\n".join(f"| {n} | {c} |" for n, c in zip(results, cells, strict=True))
    text = f"""## Text -> video: temporal scoring (bench/video.py)

{len(QUERIES)} hand-written queries (written after looking at sampled frames; none copies a caption)
over the {len(items)} videos of the videos corpus; model {model_name}; {cfg.frames_per_segment} frames
per segment, {cfg.video_frames} frames per whole video. Twins (carphone / -distorted, megamind /
-glitchy) both count as targets unless the query is about the distortion. Embedding the videos at both
segment lengths took {embed_s:.0f} s on {platform.machine()} (Python {platform.python_version()}), a
shared host; the scorings of one segment length use the same vectors.

| scoring | R@1, 5 s segments (default) | MRR | R@1, 2 s segments | MRR |
|---|---|---|---|---|
{rows}

Search by clip: a 2 s clip cut with PyAV from the middle of each video, embedded by the index job's
functions at the default settings, scored as the service scores items (best row). The clip's own
video came first for {first}/{len(clips)}, with the best segment overlapping the clip for
{moment}/{len(clips)} (a twin first counts as a miss).

| clip from | first hit | its best segment overlaps the clip |
|---|---|---|
{clip_rows}
"""
    write_section(args.out, "video", text)


if __name__ == "__main__":
    main()
