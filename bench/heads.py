"""Benchmark of the heads on a frozen encoder: the three VQA fusion modes side by side on easy-vqa
(test accuracy, training time, latency), then the caption head (easy-vqa colour+shape accuracy and,
when the corpus is there, openclipart BLEU-4 / CIDEr-D).

    python bench/heads.py [--model var/models/default] [--epochs 8] [--save var/models/default-heads]

Image and question tokens are computed once (timed as "features") and cached on disk by the feature
store (training/features.py), keyed by the towers' digests, so every fusion mode trains on the same
inputs. Writes its section of BENCHMARKS.md between <!-- bench:heads --> and <!-- /bench:heads -->;
--save writes the model with the most accurate VQA head and the caption head, metrics in its card.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402
from training.data.corpora.easyvqa import COLORS, SHAPES  # noqa: E402
from training.factory import load_model, read_card, save_model  # noqa: E402
from training.features import FeatureStore  # noqa: E402
from training.heads import answer_questions, attach_heads, generate_captions  # noqa: E402
from training.heads.evaluate import caption_scores, colour_shape_accuracy, easy_vqa_pairs, vqa_accuracy  # noqa: E402
from training.heads.fit import train_heads  # noqa: E402
from training.heads.tasks import CaptionTask, VQATask, caption_pairs, qa_examples  # noqa: E402
from training.home import corpora_dir, models_dir  # noqa: E402
from training.tasks import load_rgb  # noqa: E402


def latency_ms(fn, repeats: int = 10) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model dir or registry name (default: var/models/default)")
    ap.add_argument("--easy-vqa", type=Path, default=None, help="easy-vqa manifest.jsonl")
    ap.add_argument("--openclipart", type=Path, default=None, help="openclipart manifest.jsonl")
    ap.add_argument(
        "--openclipart-limit", type=int, default=1500, help="train images from openclipart (0: skip)"
    )
    ap.add_argument("--train-images", type=int, default=0, help="easy-vqa train images to use (0: all)")
    ap.add_argument("--epochs", type=int, default=8, help="VQA epochs per fusion mode")
    ap.add_argument("--hidden", type=int, default=128, help="VQA head width, every fusion mode")
    ap.add_argument("--caption-epochs", type=int, default=8)
    ap.add_argument("--caption-width", type=int, default=128)
    ap.add_argument("--fusions", default="early,late,hybrid")
    ap.add_argument("--save", type=Path, default=None, help="write the model with heads here")
    ap.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    default_dir = models_dir() / "default"
    model_ref = args.model or (
        str(default_dir) if (default_dir / "config.json").is_file() else "lit-effnet-minilm"
    )
    model = load_model(model_ref).eval()
    ev = args.easy_vqa or corpora_dir() / "easy-vqa" / "manifest.jsonl"
    oc = args.openclipart or corpora_dir() / "openclipart" / "manifest.jsonl"
    store = FeatureStore(model)

    train_qa, test_qa = qa_examples(ev, ("train",)), qa_examples(ev, ("test",))
    cap_train, _ = easy_vqa_pairs(ev, ("train",))
    if args.train_images:  # a seeded subset of train images, with all their questions and captions
        keep = set(random.Random(0).sample(sorted({e.key for e in train_qa}), args.train_images))
        train_qa = [e for e in train_qa if e.key in keep]
        cap_train = [p for p in cap_train if p.key in keep]
    cap_test, truth = easy_vqa_pairs(ev, ("test",))
    oc_train, oc_test = [], []
    if args.openclipart_limit and oc.is_file():
        rng = random.Random(0)
        oc_train = caption_pairs(oc, ("train",))
        oc_train = rng.sample(oc_train, min(args.openclipart_limit, len(oc_train)))
        oc_test = caption_pairs(oc, ("test",))[: max(args.openclipart_limit // 2, 1)]
    images = {x.key: x.image for x in train_qa + test_qa + oc_train + oc_test}
    start = time.perf_counter()
    store.prepare_images(images, tokens=True)
    store.prepare_texts({e.question for e in train_qa + test_qa}, tokens=True)
    features = {"seconds": time.perf_counter() - start, "images": len(images)}

    # VQA: one head per fusion mode on the same cached tokens
    task = VQATask(train_qa, batch_size=128, features=store)
    rows, trained = [], {}
    one_image, one_q = load_rgb(test_qa[0].image), test_qa[0].question
    for fusion in args.fusions.split(","):
        torch.manual_seed(0)
        attach_heads(model, {"vqa": task.head_config(fusion, hidden=args.hidden)})
        fit = train_heads(model, [task], epochs=args.epochs, lr=2e-3)
        acc = vqa_accuracy(model, test_qa, store)
        ms = latency_ms(lambda: answer_questions(model, [one_image], [one_q]))
        params = sum(p.numel() for p in model.heads["vqa"].parameters())
        rows.append({"fusion": fusion, "train_s": fit["seconds"], "latency_ms": ms, "params": params, **acc})
        trained[fusion] = (dict(model.config.heads["vqa"]), model.heads["vqa"])
        print(json.dumps(rows[-1]))
    best = max(rows, key=lambda r: r["vqa/accuracy"])
    model.config.heads = {**model.config.heads, "vqa": trained[best["fusion"]][0]}
    model.heads["vqa"] = trained[best["fusion"]][1]

    # Caption head on easy-vqa (+ openclipart) captions
    cap_task = CaptionTask(cap_train + oc_train, batch_size=64, features=store)
    torch.manual_seed(0)
    attach_heads(model, {"caption": cap_task.head_config(min_count=2, max_len=20, width=args.caption_width)})
    cap_fit = train_heads(model, [cap_task], epochs=args.caption_epochs, lr=1e-3)
    cap = colour_shape_accuracy(model, cap_test, truth, COLORS, SHAPES, store)
    cap_ms = latency_ms(lambda: generate_captions(model, [one_image], beam_size=3))
    oc_scores = caption_scores(model, oc_test, store) if oc_test else {}
    print(json.dumps({**cap, **oc_scores, "train_s": cap_fit["seconds"], "latency_ms": cap_ms}))

    result = {
        "model": model_ref,
        "features": features,
        "image_size": model.image_size,
        "vqa": rows,
        "caption": {
            **cap,
            **{f"openclipart/{k}": v for k, v in oc_scores.items()},
            "train_s": cap_fit["seconds"],
            "latency_ms": cap_ms,
            "train_images": len(cap_task.pairs),
        },
    }
    write_section(args.out, "heads", render(result, args, len(train_qa), len(test_qa), len(oc_train)))
    if args.save:
        card = {
            "heads": {
                "trained_on": {
                    "vqa": "easy-vqa train",
                    "caption": "easy-vqa train + openclipart train sample",
                },
                "easy-vqa/vqa/accuracy": best["vqa/accuracy"],
                **{f"easy-vqa/{k}": v for k, v in best.items() if k.startswith("vqa/accuracy/")},
                "easy-vqa/caption/color_shape_accuracy": cap["caption/color_shape_accuracy"],
                **{f"openclipart/{k}": v for k, v in oc_scores.items()},
            }
        }
        base = read_card(model_ref) if Path(model_ref, "card.json").is_file() else {}
        base.pop("fingerprint", None)  # the weights change: save_model writes the new one
        save_model(model, args.save, {**base, **card, "base_model": model_ref})
    return result


def render(r: dict, args, n_train: int, n_test: int, n_oc: int) -> str:
    lines = [
        "## Heads: VQA fusion modes and captioning (bench/heads.py)",
        "",
        f"Model `{r['model']}` with its encoder frozen; {platform.machine()} CPU, "
        f"{torch.get_num_threads()} torch threads, 1-min load average {os.getloadavg()[0]:.1f} at the end "
        f"(shared host). easy-vqa: {n_train:,} train questions "
        f"({args.train_images or 'all'} train images), "
        f"{n_test:,} test questions (official test split). "
        f"Image tokens are computed once and cached on disk ({r['features']['images']:.0f} images, "
        f"image tower at {r['image_size']} px; {r['features']['seconds']:.0f} s to compute or read back "
        "in this run); "
        f"each VQA head (width {args.hidden}) then trains {args.epochs} epochs on the cached tokens.",
        "",
        "| fusion | test accuracy | yes-no | color | shape | train (s) | latency, 1 image (ms) | params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["vqa"]:
        lines.append(
            f"| {row['fusion']} | {row['vqa/accuracy']:.4f} | {row.get('vqa/accuracy/yes-no', 0):.4f} | "
            f"{row.get('vqa/accuracy/color', 0):.4f} | {row.get('vqa/accuracy/shape', 0):.4f} | "
            f"{row['train_s']:.0f} | {row['latency_ms']:.0f} | {row['params']:,} |"
        )
    c = r["caption"]
    lines += [
        "",
        "Latency: one `answer_questions` call end to end (preprocess, both towers, head), median of 10.",
        "",
        f"Caption head ({args.caption_epochs} epochs on {c['train_images']:,} images: easy-vqa train"
        + (f" + {n_oc:,} openclipart train" if n_oc else "")
        + f"; {c['train_s']:.0f} s): easy-vqa test colour+shape accuracy "
        f"**{c['caption/color_shape_accuracy']:.4f}** on {c['caption/images']:,} images; beam 3, "
        f"{c['latency_ms']:.0f} ms per image end to end.",
    ]
    if "openclipart/caption/bleu4" in c:
        lines.append(
            f"openclipart test ({c['openclipart/caption/images']:,} images, grouped split): "
            f"BLEU-4 {c['openclipart/caption/bleu4']:.4f}, CIDEr-D {c['openclipart/caption/cider']:.4f}."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
