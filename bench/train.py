"""Training benchmark: throughput of lit-effnet-minilm locked vs unlocked, and the default model's
evaluation next to the untrained towers (projection heads at initialisation = the bridge alone).

    python bench/train.py [--steps 3] [--batch-size 16] [--limit N] [--model-dir var/models/default]

Writes its section of BENCHMARKS.md between <!-- bench:train --> and <!-- /bench:train -->.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402


def synthetic_pairs(n: int, size: int = 224):
    """Seeded noise images with short captions: throughput does not depend on content."""
    from training.tasks import Pair

    g = torch.Generator().manual_seed(0)
    return [
        Pair(
            f"bench/{i}",
            Image.fromarray((torch.rand(size, size, 3, generator=g) * 255).byte().numpy()),
            [f"picture number {i}"],
        )
        for i in range(n)
    ]


def throughput(mode: str, steps: int, batch: int) -> float:
    """Training samples/s of a few optimiser steps (after one warm-up step), one process."""
    from training.factory import build_model, get_model_config
    from training.features import FeatureStore
    from training.tasks import ContrastiveTask

    config = get_model_config("lit-effnet-minilm")
    if mode == "unlocked":
        config.lit = {**config.lit, "unlock_image_blocks": 2, "unlock_text_layers": 2}
    model = build_model(config).train()
    pairs = synthetic_pairs(batch * (steps + 1))
    store = None
    if mode == "locked+cache":
        store = FeatureStore(
            model, directory=Path(os.environ.get("TMPDIR", "/tmp")) / "xmodal-bench-features"
        )
        store.prepare(pairs)  # cost of filling the cache is paid once per corpus, not per epoch
    task = ContrastiveTask(pairs, model, batch, features=store)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batches = task.batches(0, 1, 0, 0)
    start = None
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        loss = task.loss(model, next(batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


@torch.no_grad()
def text_to_video(model) -> dict:
    """Text->video recall over the videos corpus, each video's first caption as its query; a video is the
    mean of 8 frames (training/video.py, as `xmodal index` embeds it)."""
    from training.data.corpora import corpus_manifest
    from training.data.manifest import load_manifest, media_path
    from training.evaluate import retrieval_recall
    from training.video import VideoConfig, sample_video

    manifest = corpus_manifest("videos")
    items = [it for it in load_manifest(manifest) if it.media == "video" and it.captions]
    model.eval()
    vids = []
    for it in items:
        frames = sample_video(media_path(manifest, it), VideoConfig()).frames
        clip = torch.stack([model.preprocess(f) for f in frames])[None]  # (1, T, 3, H, W)
        vids.append(model.encode_video(clip, normalize=True))
    txt = model.embed_texts([it.captions[0] for it in items])
    recall = retrieval_recall(torch.cat(vids), txt, torch.eye(len(items), dtype=torch.bool), ks=(1, 5))
    return {"t2v_R@1": recall["t2i_R@1"], "t2v_R@5": recall["t2i_R@5"], "videos": len(items)}


def eval_rows(model_dir: Path, limit: int | None) -> list[tuple[str, dict]]:
    from training.evaluate import evaluate_model
    from training.factory import create_model, load_model, read_card

    def evaluate(model, card):
        model.heads = None  # retrieval only: bench/heads.py measures the heads
        return {**evaluate_model(model, card, limit=limit), "videos": text_to_video(model)}

    card = read_card(model_dir)
    rows = [("untrained (bridge at init)", evaluate(create_model("lit-effnet-minilm"), {}))]
    if (model_dir / "config.json").is_file():
        rows.append((f"trained: {model_dir.name}", evaluate(load_model(model_dir), card)))
        alone = load_model(model_dir)
        alone.cfg.bridge_share, alone.cfg.familiar_bank = 1.0, 0  # every score from the fixed bridge part
        rows.append((f"trained: {model_dir.name}, bridge part alone (share 1)", evaluate(alone, card)))
    return rows


def render(speeds: dict, rows: list, args, wall: float) -> str:
    lines = [
        "## Training (bench/train.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; batch {args.batch_size}, {args.steps} timed steps; "
        f"load average at start {args.load:.1f}. Whole run {wall:.0f} s.",
        "",
        "| mode (lit-effnet-minilm, 224 px) | samples/s |",
        "|---|---|",
        *[f"| {m} | {v:.1f} |" for m, v in speeds.items()],
        "",
        "locked+cache: heads on cached tower features (the default preset); locked: towers run every "
        "step without gradients; unlocked: top 2 EfficientNet blocks and top 2 MiniLM layers train.",
        "",
    ]
    if rows:
        lines += [
            "| model | t2i R@1 | t2i R@5 | t2i R@10 | i2t R@1 | i2t R@10 | gallery | fashion acc | kind "
            "| photos R@10 | t2v R@1 | t2v R@5 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, metrics in rows:
            r = metrics["openclipart/test"]
            kind, c = next(
                (k.rsplit("/", 1)[1], v) for k, v in metrics.items() if k.startswith("fashion-mnist/")
            )
            recalls = " | ".join(
                f"{r[k]:.3f}" for k in ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@10")
            )
            photos = metrics.get("photos/among_openclipart_test", {}).get("t2i_R@10")
            v = metrics["videos"]
            lines.append(
                f"| {name} | {recalls} | {r['gallery']} | {c['accuracy']:.3f} ({c['images']} img) | {kind} "
                f"| {'-' if photos is None else f'{photos:.3f}'} | {v['t2v_R@1']:.3f} | {v['t2v_R@5']:.3f} |"
            )
        lines += [
            "",
            "Recall over the openclipart test split (grouped by title stem and image hash, first caption "
            "as query); accuracy: nearest class prompt on the fashion-mnist test set, zero-shot for the "
            "untrained towers, prompt classification on a held-out split for a model trained on "
            "fashion-mnist's train split; photos: the photos corpus's captions finding their photo among "
            "every photo plus the openclipart test images (training/evaluate.py, evaluate_photos_among); "
            "t2v: the videos corpus's first captions finding their video among all of them (8 frames "
            "averaged per video). The bridge-part-alone row scores the same trained model with every image "
            "and text share at 1, the reference the issue's photo target is set against.",
        ]
    return "\n".join(lines)


def main() -> None:
    from training.home import models_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="test images per corpus (default: all)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args()
    args.load = os.getloadavg()[0]
    start = time.time()
    speeds = {m: throughput(m, args.steps, args.batch_size) for m in ("locked+cache", "locked", "unlocked")}
    print(speeds)
    rows = [] if args.skip_eval else eval_rows(args.model_dir or models_dir() / "default", args.limit)
    text = render(speeds, rows, args, time.time() - start)
    write_section(ROOT / "BENCHMARKS.md", "train", text)
    print(text)


if __name__ == "__main__":
    main()
