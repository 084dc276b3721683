"""Our BLEU-4 and CIDEr-D agree with the COCO caption evaluation's own scorers (pycocoevalcap's pure
Python Bleu and Cider; its Java tokenizer is not used: both sides get the same `words()` tokens)."""

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from training.heads.caption import words
from training.heads.metrics import bleu4, cider_per_image

VOCAB = [
    "a",
    "the",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "circle",
    "square",
    "triangle",
    "on",
    "in",
    "near",
    "white",
    "black",
    "background",
    "top",
]


def _corpus(seed: int, images: int = 25) -> tuple[list[str], list[list[str]]]:
    """Seeded captions: each hypothesis is a reference with a few words changed, dropped or added, so
    every n-gram order has matches and lengths differ (the brevity and length penalties matter)."""
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(images):
        rs = [" ".join(rng.choices(VOCAB, k=rng.randint(5, 11))) for _ in range(rng.randint(1, 4))]
        h = rs[0].split()
        for _ in range(rng.randint(0, 3)):
            op, i = rng.choice("sda"), rng.randrange(len(h))
            if op == "s":
                h[i] = rng.choice(VOCAB)
            elif op == "d" and len(h) > 4:
                del h[i]
            else:
                h.insert(i, rng.choice(VOCAB))
        hyps.append(" ".join(h).capitalize() + ".")  # case and punctuation: words() removes both
        refs.append(rs)
    return hyps, refs


def _coco_inputs(hyps, refs):
    res = {i: [" ".join(words(h))] for i, h in enumerate(hyps)}
    gts = {i: [" ".join(words(r)) for r in rs] for i, rs in enumerate(refs)}
    return gts, res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu4_equals_pycocoevalcap(seed):
    hyps, refs = _corpus(seed)
    gts, res = _coco_inputs(hyps, refs)
    coco, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert bleu4(hyps, refs) == pytest.approx(coco[3], rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_equals_pycocoevalcap_per_image(seed):
    hyps, refs = _corpus(seed)
    gts, res = _coco_inputs(hyps, refs)
    _, coco = Cider().compute_score(gts, res)
    assert cider_per_image(hyps, refs) == pytest.approx(list(coco), rel=1e-6, abs=1e-9)
