"""Caption and VQA latency at one client, before and after the solver router, side by side in one run.

    python bench/understand.py [--model var/models/default] [--repeats 15]

"before": today's head calls (`generate_captions`, `answer_questions`: the decoder and the easy-vqa head
on every image). "after": what /v1/caption and /v1/vqa now run: one image forward (`image_features`)
then the solver (`caption_image`, `answer_question`) -- measured on a real photo (concept captions,
kind / colour / yes-no answers) and on an easy-vqa image (the domain check sends it to the trained heads).
Without --model it uses the default architecture with untrained heads of the default sizes (latency
does not depend on their weights); --understanding supplies the calibration such a model lacks.
Writes its section of BENCHMARKS.md (<!-- bench:understand -->).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402
from training.factory import create_model, load_model, read_card  # noqa: E402
from training.heads import answer_questions, attach_heads, build_vocab, generate_captions  # noqa: E402
from training.understand import (  # noqa: E402
    Calibration,
    answer_question,
    calibrate_on_corpora,
    caption_image,
    image_features,
)


def colour_by_prompts(model) -> tuple[float, int]:
    """Accuracy of the other way to answer colour questions: the dual encoder's nearest of
    "a photo of a {colour} {thing}." over the basic colours (training/colours.py uses pixels)."""
    from training.colours import BASIC_COLOURS
    from training.evaluate import real_photos
    from training.questions import parse_question

    spec, _, feats, _ = real_photos(model)
    right = []
    for k, feat in feats.items():
        for qa in spec[k]["questions"]:
            q = parse_question(qa["question"])
            if q.kind == "colour":
                prompts = model.embed_texts([f"a photo of a {c} {q.target}." for c in BASIC_COLOURS])
                right.append(
                    list(BASIC_COLOURS)[int((prompts.float() @ feat.embedding).argmax())] in qa["answers"]
                )
    return sum(right) / len(right), len(right)


def quality(model, cal: Calibration, name: str | None) -> str:
    """The real-photo set (training/eval/real_photos.json) as `xmodal eval` scores it, as markdown."""
    from training.evaluate import _split_items, evaluate_real_photos, evaluate_videos

    bank = [it.captions[0] for _, _, it in _split_items("openclipart", "train", None) if it.captions]
    p = evaluate_real_photos(model, cal, bank)
    v = evaluate_videos(model)
    prompts, n_colour = colour_by_prompts(model)
    u = cal.__dict__
    lines = [
        "## Real photos: captions, VQA, search (bench/understand.py --quality; as `xmodal eval` scores it)",
        "",
        f"Model: {name or 'default architecture (pretrained towers, untrained projection, no heads)'}. "
        f"{p['photos']} photos, {p['questions']} hand-written questions, caption bank: {len(bank)} clip-art "
        "train titles + the other photos' captions (never the photo's own); yes/no thresholds fitted "
        "leaving the photo out. Calibrated: yes/no z >= "
        f"{u['yes_z']}, absent below class share {u['absent_share']}, bank score >= {u['bank_score']} "
        "(None: the bank never beat the other captions), "
        f"domain floors {({k: d['min_cos'] for k, d in u['domains'].items()})}.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| photo VQA top-1 | {p['vqa_top1']:.3f} | >= 0.70 |",
        *[f"| - {k[4:]} questions | {p[k]:.3f} | |" for k in sorted(p)
          if k.startswith("vqa_") and k not in ("vqa_top1", "vqa_solvers")],
        f"| - colour by prompts instead of pixels (not used; {n_colour} questions) | {prompts:.3f} | |",
        f"| photo captions with an accepted word | {p['caption_hit_rate']:.3f} | >= 0.75 |",
        f"| text->photo R@1 / R@5 ({p['photos']} photos) | {p['t2i_R@1']:.3f} / {p['t2i_R@5']:.3f} "
        "| 0.55 / 0.85 |",
        f"| text->video R@1 / R@5 ({v['videos']} videos, {v['queries']} queries) | {v['t2v_R@1']:.3f} / "
        f"{v['t2v_R@5']:.3f} | |",
        "",
        f"Caption methods used: {p['caption_methods']}; VQA solvers used: {p['vqa_solvers']}.",
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument(
        "--understanding", help="JSON file of a card's 'understanding' section: read, or written if missing"
    )
    ap.add_argument(
        "--quality", action="store_true", help="also score the real-photo set (section real-photos)"
    )
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    import skimage.data
    from PIL import Image

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if args.model:
        model, card = load_model(args.model), read_card(args.model)
    else:
        model, card = create_model("lit-effnet-minilm"), {}
    model.eval()
    if args.understanding and Path(args.understanding).is_file():
        card = {**card, "understanding": json.loads(Path(args.understanding).read_text())}
    elif "understanding" not in card:
        card = {**card, "understanding": calibrate_on_corpora(model)}
        if args.understanding:  # saved for the next run
            Path(args.understanding).write_text(json.dumps(card["understanding"]))
    cal = Calibration.from_card(card)
    if args.quality:  # before any untrained heads are attached: they would caption clip-art-like photos
        write_section(Path(args.out), "real-photos", quality(model, cal, args.model))
    if not args.model:
        vocab = build_vocab(["a red blue green yellow circle square triangle cartoon cow tree house star"])
        answers = ["red", "blue", "green", "yellow", "teal", "brown", "gray", "black"]
        answers += ["circle", "rectangle", "triangle", "yes", "no"]
        attach_heads(model, {"vqa": {"answers": answers}, "caption": {"vocab": vocab}})
    photo = Image.fromarray(skimage.data.chelsea())
    shapes = Image.new("RGB", (64, 64), "white")
    shapes.paste((200, 30, 30), (16, 16, 48, 48))

    def after_caption(image):
        feat = image_features(model, model.preprocess(image)[None])[0]
        return caption_image(model, feat, cal)

    def after_vqa(image, q):
        feat = image_features(model, model.preprocess(image)[None])[0]
        return answer_question(model, feat, image, q, cal)

    cases = [
        ("caption", "before: decoder", lambda: generate_captions(model, [photo], max_len=30)),
        ("caption", "after: photo (concept)", lambda: after_caption(photo)),
        ("vqa", "before: easy-vqa head", lambda: answer_questions(model, [photo], ["what animal is this?"])),
        ("vqa", "after: photo, kind", lambda: after_vqa(photo, "what animal is this?")),
        ("vqa", "after: photo, colour", lambda: after_vqa(photo, "what colour is the cat?")),
        ("vqa", "after: photo, yes/no", lambda: after_vqa(photo, "is there a dog?")),
    ]
    if cal.domains:  # the easy-vqa domain path exists only for a calibrated model
        cases += [
            ("caption", "after: easy-vqa image (decoder)", lambda: after_caption(shapes)),
            ("vqa", "after: easy-vqa image (head)", lambda: after_vqa(shapes, "what shape is in the image?")),
        ]
    with torch.inference_mode():  # interleaved rounds: a busy host slows every path alike
        times = {what: [] for _, what, _ in cases}
        for fn in (fn for _, _, fn in cases):
            fn()  # warm-up
        for _ in range(args.repeats):
            for _, what, fn in cases:
                t = time.perf_counter()
                fn()
                times[what].append(1000 * (time.perf_counter() - t))
        rows = [(task, what, statistics.median(times[what])) for task, what, _ in cases]
    before = {task: ms for task, what, ms in rows if what.startswith("before")}
    lines = [
        "## Caption and VQA latency at one client (bench/understand.py)",
        "",
        f"Model: {args.model or 'default architecture, untrained heads of the default sizes'}; "
        f"{platform.machine()}, {torch.get_num_threads()} threads; median of {args.repeats} interleaved "
        f"rounds; 1-min load average {os.getloadavg()[0]:.1f} at the end, so read the ratios, measured side "
        "by side.",
        "",
        "| task | path | ms | x before |",
        "|---|---|---|---|",
        *[f"| {task} | {what} | {ms:.1f} | {ms / before[task]:.2f} |" for task, what, ms in rows],
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "understand", text)


if __name__ == "__main__":
    main()
