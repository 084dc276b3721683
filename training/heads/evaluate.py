"""Head metrics for `xmodal eval` and the benchmark; keys are flat, ready for card.json.

    vqa_accuracy(model, examples)                 {"vqa/accuracy", "vqa/accuracy/<type>", "vqa/questions"}
    caption_scores(model, pairs)                  {"caption/bleu4", "caption/cider", "caption/images"}
    colour_shape_accuracy(model, pairs, truth)    {"caption/color_shape_accuracy", "caption/images"}
    evaluate_heads(model, manifests)              all of the above that the heads and corpora allow

Images are embedded once per distinct image and questions once per distinct question (easy-vqa's
9,673 test questions share 1,000 images and 107 question strings); pass a FeatureStore
(training/features.py) to share them with training.
"""

import re
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from training.data.manifest import load_manifest
from training.features import FeatureStore
from training.heads.inference import beam_captions, get_head
from training.heads.metrics import bleu4, cider
from training.heads.tasks import QAExample, caption_pairs, qa_examples
from training.model import XModalModel
from training.tasks import Pair


@torch.inference_mode()
def vqa_accuracy(
    model: XModalModel, examples: list[QAExample], features: FeatureStore | None = None, batch_size: int = 256
) -> dict:
    """Top-1 accuracy overall and per question type (QA.type; "other" when missing)."""
    head = get_head(model, "vqa")
    features = features or FeatureStore(model, frozen=True)
    correct: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in tqdm(range(0, len(examples), batch_size), desc="vqa eval", unit="batch"):
        ex = examples[i : i + batch_size]
        image = features.image_tokens([e.key for e in ex], [e.image for e in ex])
        q, q_mask = features.text_tokens([e.question for e in ex])
        pred = head(image, q, q_mask).argmax(-1).tolist()
        for e, p in zip(ex, pred, strict=True):
            for t in ("all", e.type or "other"):
                correct[t][0] += head.config.answers[p] == e.answer
                correct[t][1] += 1
    out = {"vqa/accuracy": correct["all"][0] / max(correct["all"][1], 1), "vqa/questions": correct["all"][1]}
    out.update({f"vqa/accuracy/{t}": c / n for t, (c, n) in sorted(correct.items()) if t != "all"})
    return out


@torch.inference_mode()
def generate_for(
    model: XModalModel,
    pairs: list[Pair],
    features: FeatureStore | None = None,
    beam_size: int = 3,
    batch_size: int = 64,
) -> list[str]:
    """The best beam-search caption of each pair's image."""
    head = get_head(model, "caption")
    features = features or FeatureStore(model, frozen=True)
    out = []
    for i in tqdm(range(0, len(pairs), batch_size), desc="captions", unit="batch"):
        ps = pairs[i : i + batch_size]
        tokens = features.image_tokens([p.key for p in ps], [p.image for p in ps])
        out += [c[0][0] for c in beam_captions(head, tokens, beam_size, head.config.max_len, 1)]
    return out


def caption_scores(model: XModalModel, pairs: list[Pair], features: FeatureStore | None = None) -> dict:
    """Corpus BLEU-4 and CIDEr-D of beam-search captions against each image's reference captions."""
    hyps = generate_for(model, pairs, features)
    refs = [p.captions for p in pairs]
    return {
        "caption/bleu4": bleu4(hyps, refs),
        "caption/cider": cider(hyps, refs),
        "caption/images": len(pairs),
    }


def colour_shape_accuracy(
    model: XModalModel,
    pairs: list[Pair],
    truth: list[tuple[str, str]],
    colours: tuple[str, ...],
    shapes: tuple[str, ...],
    features: FeatureStore | None = None,
) -> dict:
    """Share of generated captions naming exactly the true colour and the true shape, and no other
    colour or shape word. `truth` is (colour, shape) per pair."""
    hits = 0
    for caption, (c, s) in zip(generate_for(model, pairs, features), truth, strict=True):
        found = set(re.findall(r"[a-z]+", caption))
        hits += found & set(colours) == {c} and found & set(shapes) == {s}
    return {"caption/color_shape_accuracy": hits / max(len(truth), 1), "caption/images": len(truth)}


def easy_vqa_pairs(manifest: str | Path, splits: tuple[str, ...]) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Captioned easy-vqa images whose meta fixes both colour and shape, with that (colour, shape)."""
    pairs = {p.key: p for p in caption_pairs(manifest, splits)}
    truth = {
        f"{Path(manifest).parent.name}/{it.id}": (it.meta.get("color"), it.meta.get("shape"))
        for it in load_manifest(manifest, splits)
    }
    keep = [k for k in pairs if all(truth.get(k, (None, None)))]
    return [pairs[k] for k in keep], [truth[k] for k in keep]


def evaluate_heads(model: XModalModel, manifests: dict[str, Path], split: str = "test") -> dict:
    """Every head metric the model's heads and the given corpora allow, keyed for card.json.
    `manifests` maps corpus name ("easy-vqa", "openclipart") to its manifest.jsonl."""
    from training.data.corpora.easyvqa import COLORS, SHAPES

    heads = getattr(model, "heads", {})
    out: dict = {}
    ev, oc = manifests.get("easy-vqa"), manifests.get("openclipart")
    features = FeatureStore(model, frozen=True)
    if ev and "vqa" in heads:
        out.update(
            {f"easy-vqa/{k}": v for k, v in vqa_accuracy(model, qa_examples(ev, (split,)), features).items()}
        )
    if ev and "caption" in heads:
        pairs, truth = easy_vqa_pairs(ev, (split,))
        metrics = colour_shape_accuracy(model, pairs, truth, COLORS, SHAPES, features)
        out.update({f"easy-vqa/{k}": v for k, v in metrics.items()})
    if oc and "caption" in heads:
        out.update(
            {f"openclipart/{k}": v for k, v in caption_scores(model, caption_pairs(oc, (split,))).items()}
        )
    return out
