"""Captions and answers for any image: route to the solver that knows its domain and its question.

One image forward gives every solver what it needs (`image_features`): the pooled tower output, the
image tokens (for the trained heads), the embedding (for zero-shot and the caption bank) and the
ImageNet class probabilities (for WordNet concepts, training/concepts.py): the tower's classifier's,
or for a model without one (a CLIP or SigLIP users bring) zero-shot by its own rule. Then per image:

    domain_of        easy-vqa / openclipart (the trained heads' domains: pooled-feature centroids and
                     cosine floors calibrated on their held-out splits) or "photo" (everything else)
    caption_image    decoder (its domains) | colour (a plain picture: "a plain red picture") |
                     bank (best bank caption above a calibrated score) |
                     concept: the most probable kind's most probable class ("a tabby, a kind of
                     cat"; the kind "what is this?" answers) -- each caption names its method
    answer_question  easy-vqa head (its domain) | kind (best concept under the asked WordNet category) |
                     colour (pixels, training/colours.py; unsure where the classes say the thing is
                     absent) | yes/no: "classes" (no, where the tower has
                     classes of the thing and they hold too little probability) else zero-shot
                     (calibrated z-score) | unsure -- each answer names its solver

Thresholds live in the model card's "understanding" section, written by `calibrate` (called by
`xmodal eval`); without them a solver that needs one answers `unsure` instead of guessing.
"""

import random
import re
import weakref
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from training.colours import REGIONS, colour_names, plain_colour
from training.concepts import Concept, category_synsets, concepts_for, wordnet
from training.questions import Question, parse_question

# Memorised junk the caption decoder learned from clip-art metadata ("part of the flat icon
# collection wed aug 25 23 29 46 2004", "lemon svg theme") or its names and foreign titles ("gramastar",
# "condominio": words WordNet does not know): such a caption is never returned.
_JUNK = re.compile(
    r"\d|\bcollection\b|\bpart of\b|\bclip ?art\b|\bsvg\b|\b(?:mon|tue|wed|thu|fri|sat|sun)\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\b"
)
_ANY = {None, "object", "objects", "thing", "things", "item", "items"}
PROMPT = "a photo of a {}."  # zero-shot: yes/no things, and ImageNet classes for a model without a classifier
KIND_TOP = 5  # a kind answer is unsure unless one of the top-5 classes is of the asked category


def is_junk(caption: str) -> bool:
    text = caption.lower()
    if not text.strip() or _JUNK.search(text):
        return True
    words = re.findall(r"[a-z]+", text)
    return any(w not in ENGLISH_STOP_WORDS and not wordnet().synsets(w) for w in words)


@dataclass
class ImageFeatures:
    """What one image forward gives, per image."""

    pooled: torch.Tensor  # (W,) pooled tower output
    tokens: torch.Tensor  # (N, W) image tokens, for the caption and VQA heads
    embedding: torch.Tensor  # (D,) normalised, in the shared space
    probs: torch.Tensor  # (C,) class probabilities: the tower's classifier, or zero-shot ImageNet classes


@torch.inference_mode()
def image_features(model, pixels: torch.Tensor) -> list[ImageFeatures]:
    """(B, 3, H, W) preprocessed -> per image ImageFeatures, from one pass through the image tower
    when the model exposes its feature map (the LiT towers) and from its own encoders otherwise."""
    pixels = pixels.to(model.device)
    net = getattr(model, "image_net", None)
    if net is not None and hasattr(net, "feature_map"):
        fmap = net.feature_map(pixels)  # (B, W, h, w)
        pooled = fmap.mean((2, 3))
        tokens = fmap.flatten(2).transpose(1, 2)
        emb = F.normalize(model.image_head(pooled, normalize=True).float(), dim=-1)
        probs = net.logits(pooled).softmax(-1)
    else:  # no separable tower (open_clip models): the embedding stands in for the pooled output
        tokens = model.image_tokens(pixels)
        emb = F.normalize(model.encode_image(pixels, normalize=True).float(), dim=-1)
        pooled, probs = emb, _zero_shot_classes(model, emb)
    return [
        ImageFeatures(pooled[i].float().cpu(), tokens[i].cpu(), emb[i].cpu(),
                      probs[i].float().cpu())
        for i in range(len(pixels))
    ]  # fmt: skip


@dataclass
class Calibration:
    """card["understanding"]: the thresholds `calibrate` measured on held-out data."""

    domains: dict[str, dict] = field(default_factory=dict)  # name -> {"centroid": [W], "min_cos": float}
    yes_z: float | None = None  # zero-shot z-score above which "is there a X" is yes
    bank_score: float | None = None  # bank caption cosine above which the bank caption is used
    absent_share: float | None = None  # "is there a X" is no where X's classes hold under this class_share

    @classmethod
    def from_card(cls, card: dict) -> "Calibration":
        u = (card or {}).get("understanding") or {}
        return cls(u.get("domains", {}), u.get("yes_z"), u.get("bank_score"), u.get("absent_share"))

    @classmethod
    def outdated(cls, card: dict) -> bool:
        """Whether the card lacks a threshold this version reads (never calibrated, or by an older one)."""
        u = (card or {}).get("understanding")
        return u is None or any(f.name not in u for f in fields(cls))

    def domain_of(self, feat: ImageFeatures) -> str:
        """The trained domain the image is closest to, if within that domain's floor, else "photo";
        "unknown" for an uncalibrated model (its trained heads then answer first, as before)."""
        if not self.domains:
            return "unknown"
        x = F.normalize(feat.pooled, dim=0)
        best, best_cos = "photo", -1.0
        for name, d in self.domains.items():
            cos = float(x @ torch.tensor(d["centroid"]))
            if cos >= d["min_cos"] and cos > best_cos:
                best, best_cos = name, cos
        return best


@dataclass
class Result:
    """One caption or answer, with the method that produced it."""

    text: str
    score: float
    method: str
    unsure: bool = False


def _classes(model) -> list[str]:
    """The tower's own classifier's classes, or ImageNet-1k's for a model without one (a CLIP or
    SigLIP that users bring): those it scores zero-shot, by its own rule (`_zero_shot_classes`)."""
    net = getattr(model, "image_net", None)
    if net is not None and hasattr(net, "classes"):
        return net.classes
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


def _concepts(model) -> tuple[Concept, ...]:
    return concepts_for(_classes(model))


_CLASS_PROMPTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@torch.inference_mode()
def _zero_shot_classes(model, emb: torch.Tensor) -> torch.Tensor:
    """(B, D) normalised image embeddings -> (B, C) ImageNet class probabilities by the model's own
    zero-shot rule (CLIP: softmax; SigLIP: sigmoids, renormalised to sum to one): the class
    probabilities of a model without a classifier, so concepts, kind answers and yes/no contrast
    work for every dual encoder. The class prompts are embedded once per model (`prepare`)."""
    if model not in _CLASS_PROMPTS:
        _CLASS_PROMPTS[model] = model.embed_texts([PROMPT.format(c) for c in _classes(model)]).float()
    labels = _CLASS_PROMPTS[model].to(emb.device)
    probs = torch.stack([model.zero_shot_probs(e, labels).float() for e in emb])
    return probs / probs.sum(-1, keepdim=True).clamp(min=1e-12)


def prepare(model) -> None:
    """One image forward now, which embeds a classifier-less model's class prompts (1,000 texts), and the
    classes' WordNet concepts with their yes/no contrast prompts (about 4 s on 2 cores), so its first
    caption or answer is not the slow one; the registry calls it when it warms a model."""
    image_features(model, torch.zeros(1, 3, model.image_size, model.image_size))
    _contrast(model)


_CONTRAST: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@torch.inference_mode()
def _contrast(model) -> torch.Tensor:
    """(K, D) prompt embeddings of the model's basic concept names: the
    reference a yes/no score is measured against, so that it means the same on every image."""
    if model not in _CONTRAST:
        names = sorted({c.basic for c in _concepts(model)})
        _CONTRAST[model] = model.embed_texts([PROMPT.format(n) for n in names]).float()
    return _CONTRAST[model]


@torch.inference_mode()
def yes_no_scores(model, embeddings: torch.Tensor, things: list[str]) -> torch.Tensor:
    """(B, D) image embeddings, B things -> (B,) z-scores of each thing's prompt against the contrast set."""
    prompts = model.embed_texts([PROMPT.format(t) for t in things]).float()  # (B, D)
    ref = embeddings @ _contrast(model).T  # (B, K)
    s = (embeddings * prompts).sum(-1)
    return (s - ref.mean(1)) / ref.std(1).clamp(min=1e-6)


def _members(model, target: str | None) -> list[int]:
    """The classes under `target`'s noun senses (every class for "what is this?"); [] for a word the
    tower has no classes of."""
    concepts = _concepts(model)
    if target in _ANY:
        return list(range(len(concepts)))
    base = wordnet().morphy(target.replace(" ", "_"), "n") or target
    cats = category_synsets(base)
    return [c.index for c in concepts if c.ancestors & cats]


def class_share(model, feat: ImageFeatures, thing: str | None) -> float | None:
    """The probability the tower's classes of `thing` hold, over the share a uniform guess gives them
    (1: no evidence either way; a photo of a cat gives the 118 dog classes about 0.03); None when the
    tower has no classes of it."""
    members = _members(model, thing) if thing not in _ANY else []
    if not members:
        return None
    return float(feat.probs[members].sum()) * len(feat.probs) / len(members)


def _kinds(model, feat: ImageFeatures, members: list[int]) -> list[tuple[str, float, Concept]]:
    """The basic names of `members` by the probability their classes hold together, best first, each
    with its most probable class: (basic name, its mass, that class's Concept)."""
    concepts, probs = _concepts(model), feat.probs.tolist()
    mass: dict[str, float] = {}
    best: dict[str, Concept] = {}
    for i in members:
        c = concepts[i]
        mass[c.basic] = mass.get(c.basic, 0.0) + probs[i]
        if c.basic not in best or probs[i] > probs[best[c.basic].index]:
            best[c.basic] = c
    return [(name, p, best[name]) for name, p in sorted(mass.items(), key=lambda kv: -kv[1])]


def _kind(model, feat: ImageFeatures, target: str | None, k: int) -> list[Result]:
    members = _members(model, target)
    if not members:  # a category the tower has no classes of ("what shape is this?")
        return [Result("", 0.0, "kind", unsure=True)]
    top_classes = set(feat.probs.topk(KIND_TOP).indices.tolist())
    unsure = not top_classes & set(members)
    return [Result(name, p, "kind", unsure) for name, p, _ in _kinds(model, feat, members)[:k]]


FOCUS_MASS = 0.1  # least probability the asked word's classes need before their map is read


@torch.inference_mode()
def _focus(model, feat: ImageFeatures, thing: str | None) -> np.ndarray | None:
    """(h, w) in [0, 1]: where the tower sees `thing`, as a class activation map (Zhou et al. 2016):
    the classifier applied to each location's token, weighted by the probabilities of the classes
    under `thing`. None when the tower has no classes of it, or they hold under FOCUS_MASS of the
    image's probability (an unrecognised object's map is noise)."""
    net = getattr(model, "image_net", None)
    members = _members(model, thing) if thing and thing not in _ANY else []
    side = round(len(feat.tokens) ** 0.5)
    if net is None or not members or side * side != len(feat.tokens):
        return None
    weights = feat.probs[members]
    if float(weights.sum()) < FOCUS_MASS:
        return None
    scores = net.logits(feat.tokens.float().to(model.device))[:, members].float().cpu()  # (N, M)
    cam = scores @ (weights / weights.sum())
    cam = (cam - cam.min()) / (cam.max() - cam.min()).clamp(min=1e-6)
    return cam.reshape(side, side).numpy()


def _centre_square(image: Image.Image) -> Image.Image:
    """The part of the picture the tower saw (the LiT towers' preprocess crops the centre square)."""
    s = min(image.size)
    left, top = (image.width - s) // 2, (image.height - s) // 2
    return image.crop((left, top, left + s, top + s))


def _chance_present(model, feat: ImageFeatures, thing: str | None, cal: Calibration) -> float | None:
    """The chance `thing` is in the picture when its classes say it is not (its class share under the
    card's absent_share: 0.5 at the threshold, less below it); None when they do not say so."""
    share = class_share(model, feat, thing)
    if cal.absent_share is None or share is None or share >= cal.absent_share:
        return None
    return 0.5 * share / cal.absent_share


def _colour(
    model, feat: ImageFeatures, image: Image.Image, target: str | None, cal: Calibration, k: int
) -> list[Result]:
    """The colours of the asked thing; unsure, each weighed by the chance it is there at all, when its
    classes say it is not (the cat photo's "what colour is the cup?")."""
    thing = (target or "").split()[-1] if target else None
    region = thing in REGIONS  # sky, grass, ...: read where they lie, not where a class sees them
    focus = None if region else _focus(model, feat, thing)
    if focus is not None:
        named = colour_names(_centre_square(image), focus=focus)[:k]
    else:
        named = colour_names(image, thing)[:k]
    present = None if region else _chance_present(model, feat, thing, cal)
    if present is not None:
        return [Result(c, p * present, "colour", unsure=True) for c, p in named]
    return [Result(c, p, "colour") for c, p in named]


def answer_question(
    model, feat: ImageFeatures, image: Image.Image, question: str, cal: Calibration, k: int = 3
) -> list[Result]:
    """The k best answers to one question about one image, best first; see the module docstring."""
    domain = cal.domain_of(feat)
    heads = getattr(model, "heads", None) or {}
    if domain in ("easy-vqa", "unknown") and "vqa" in heads:
        head = heads["vqa"]
        with torch.inference_mode():
            tokens = {n: v.to(model.device) for n, v in model.tokenize([question.strip()]).items()}
            q_tokens, q_mask = model.text_tokens(tokens)
            logits = head(feat.tokens[None].to(model.device), q_tokens, q_mask)
        return [Result(a, p, "easy-vqa head") for a, p in head.top_answers(logits, k)[0]]
    q: Question = parse_question(question)
    if q.kind == "kind":
        return _kind(model, feat, q.target, k)
    if q.kind == "colour":
        return _colour(model, feat, image, q.target, cal, k)
    if q.kind in ("presence", "identity"):
        present = _chance_present(model, feat, q.target, cal)
        if present is not None:
            return [Result("no", 1 - present, "classes")]
        z = float(yes_no_scores(model, feat.embedding[None].to(model.device), [q.target])[0])
        if cal.yes_z is None:
            return [Result("yes" if z > 0 else "no", 0.5, "zero-shot", unsure=True)]
        p = float(torch.sigmoid(torch.tensor(z - cal.yes_z)))  # 0.5 at the calibrated threshold
        yes = z >= cal.yes_z
        return [Result("yes" if yes else "no", p if yes else 1 - p, "zero-shot")]
    return [Result("", 0.0, "none", unsure=True)]


def caption_image(
    model,
    feat: ImageFeatures,
    cal: Calibration,
    bank: list[tuple[str, float]] | None = None,
    k: int = 1,
    image: Image.Image | None = None,
) -> list[Result]:
    """The k best captions of one image, best first. `bank`: the caption bank's nearest captions to
    this image (text, cosine), best first, when the caller has a bank; `image`: the picture itself, so
    that a plain one is named by its colour ("a plain red picture") rather than a guessed object."""
    domain = cal.domain_of(feat)
    heads = getattr(model, "heads", None) or {}
    decoded: list[tuple[str, float]] = []
    if domain != "photo" and "caption" in heads:
        from training.heads.inference import beam_captions

        hyps = beam_captions(heads["caption"], feat.tokens[None].to(model.device), max(3, k), 30, max(3, k))[
            0
        ]
        decoded = [(t, s) for t, s in hyps if not is_junk(t)]
    if domain in ("easy-vqa", "unknown") and decoded:
        return [Result(t, s, "decoder") for t, s in decoded[:k]]
    plain = plain_colour(image) if image is not None else None
    if plain is not None:
        return [Result(f"a plain {plain[0]} picture", plain[1], "colour")]
    good_bank = [(t, s) for t, s in bank or [] if not is_junk(t)]
    if cal.bank_score is not None and good_bank and good_bank[0][1] >= cal.bank_score:
        return [Result(t, s, "bank") for t, s in good_bank[:k] if s >= cal.bank_score]
    if decoded:
        return [Result(t, s, "decoder") for t, s in decoded[:k]]
    kinds = _kinds(model, feat, list(range(len(feat.probs))))[:k]  # the kinds "what is this?" answers
    return [Result(c.caption(), p, "concept") for _, p, c in kinds]


# ---- calibration on held-out data (never on the real-photo evaluation set) ----

_STOP = {"a", "an", "the", "of", "and", "with", "on", "in", "for", "to", "by", "at", "or", "from", "icon"}


def _nouns(title: str) -> list[str]:
    """The words of a clip-art title that are WordNet nouns (the things a yes/no question names)."""
    words = re.findall(r"[a-z]+", title.lower())
    return [w for w in words if w not in _STOP and len(w) > 2 and wordnet().synsets(w, pos="n")]


def best_threshold(pos: list[float], neg: list[float]) -> float:
    """The cut that classifies the most pairs right (score >= cut is positive)."""
    cuts = sorted(set(pos) | set(neg))
    best = max(cuts, key=lambda c: sum(p >= c for p in pos) + sum(n < c for n in neg))
    return float(best)


# The absent threshold sits at this fraction of the least share a "yes" question gave its thing: a margin
# for the yes questions calibration has not seen (leave one photo out on the real-photo set: at the least
# share itself one "is there a person?" is lost, at half of it none).
ABSENT_MARGIN = 0.5


def absent_threshold(pairs) -> float | None:
    """The class_share under which "is there a X" is answered no, from `pairs` (evaluate.YesNo rows):
    ABSENT_MARGIN of the least share any "yes" question gave its thing; None without one."""
    shares = [p.share for p in pairs if p.yes and p.share is not None]
    return round(ABSENT_MARGIN * min(shares), 4) if shares else None


def yes_no_thresholds(pairs) -> dict:
    """The yes/no solvers' thresholds fitted on `pairs` (evaluate.YesNo rows): "yes_z", the zero-shot cut
    that answers the most of them right, and "absent_share" (absent_threshold)."""
    yes_z = best_threshold([p.z for p in pairs if p.yes], [p.z for p in pairs if not p.yes])
    return {"yes_z": yes_z, "absent_share": absent_threshold(pairs)}


def _precision_cut(scores: list[float], right: list[bool], precision: float) -> float | None:
    """The lowest score above which at least `precision` of the items are right; None if none."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    cut, hits = None, 0
    for n, i in enumerate(order, 1):
        hits += right[i]
        if hits / n >= precision and n >= 5:
            cut = scores[i]
    return None if cut is None else float(cut)


BANK_PRECISION = 0.7  # the bank caption is used where at least 70% of held-out ones share a content word


@torch.no_grad()
def calibrate(model, manifests: dict, n: int = 160, seed: int = 0) -> dict:
    """card["understanding"] from held-out data: domain centroids (train split) and floors (from the
    held-out cosines of the domain and of the other corpus), the yes/no z threshold and the bank score
    threshold (clip-art held-out images against nouns of their own and of other titles, and against
    the train titles)."""
    from training.data.manifest import load_manifest, media_path
    from training.evaluate import embed_items, embed_texts
    from training.features import FeatureStore

    rng = random.Random(seed)
    out: dict = {"domains": {}, "calibrated_on": {}, "yes_z": None, "bank_score": None, "absent_share": None}
    domains = [n for n in ("easy-vqa", "openclipart") if n in manifests and model.image_locked]
    store = FeatureStore(model) if domains else None  # the feature cache needs a locked tower

    def sample(name, splits, m):
        items = [it for it in load_manifest(manifests[name], splits) if it.media == "image"]
        items = rng.sample(items, min(m, len(items)))
        return {
            f"{manifests[name].parent.name}/{it.id}": media_path(manifests[name], it) for it in items
        }, items

    def pooled(keyed):
        store.prepare_images(keyed)
        return F.normalize(store.images(list(keyed)), dim=-1)

    held = {}  # name -> (H, W) normalised pooled features of held-out images
    for name in domains:
        train, _ = sample(name, ("train",), n)
        held[name] = pooled(sample(name, ("val", "test"), n // 2)[0])
        centroid = F.normalize(pooled(train).mean(0), dim=0)
        out["domains"][name] = {"centroid": [round(v, 5) for v in centroid.tolist()]}
        out["calibrated_on"][f"domain/{name}"] = f"{len(train)} train, {len(held[name])} held-out images"
    for name in domains:
        centroid = torch.tensor(out["domains"][name]["centroid"])
        own = held[name] @ centroid
        other = [float((held[o] @ centroid).median()) for o in domains if o != name]
        # halfway between the domain's 1st-percentile held-out image and the other corpus's median one
        # when the other sits lower (easy-vqa: every held-out image passes, photos stay far below),
        # else the domain's 5th percentile (clip art is varied and easy-vqa looks like it)
        if other and max(other) < float(own.quantile(0.01)):
            floor = (float(own.quantile(0.01)) + max(other)) / 2
        else:
            floor = float(own.quantile(0.05))
        out["domains"][name]["min_cos"] = round(floor, 4)
    if "openclipart" in manifests:
        keyed, items = sample("openclipart", ("val", "test"), n)
        pairs = [
            (k, it) for k, it in zip(keyed, items, strict=True) if it.captions and _nouns(it.captions[0])
        ]
        emb = embed_items(model, {k: keyed[k] for k, _ in pairs})
        nouns = [_nouns(it.captions[0]) for _, it in pairs]
        every = sorted({w for ws in nouns for w in ws})
        pos_things = [rng.choice(ws) for ws in nouns]
        neg_things = [rng.choice([w for w in every if w not in ws] or every) for ws in nouns]
        pos = yes_no_scores(model, emb.to(model.device), pos_things).tolist()
        neg = yes_no_scores(model, emb.to(model.device), neg_things).tolist()
        out["yes_z"] = round(best_threshold(pos, neg), 4)
        out["calibrated_on"]["yes_z"] = f"{len(pos)} clip-art held-out images x (own noun, other noun)"
        bank = sorted({it.captions[0].strip() for it in load_manifest(manifests["openclipart"], ("train",))
                       if it.captions and not is_junk(it.captions[0])})  # fmt: skip
        bank = rng.sample(bank, min(3000, len(bank)))
        sims = emb @ embed_texts(model, bank).T  # (P, bank)
        best = sims.max(1)
        right = [
            bool(set(_nouns(bank[j])) & set(ws)) for j, ws in zip(best.indices.tolist(), nouns, strict=True)
        ]
        out["bank_score"] = _precision_cut(best.values.tolist(), right, BANK_PRECISION)
        out["calibrated_on"]["bank_score"] = (
            f"{len(right)} clip-art held-out images, {len(bank)} train titles, precision {BANK_PRECISION}"
        )
    if "photos" in manifests:  # real photos: the yes/no and bank thresholds the service uses on photos
        from training.evaluate import bank_rows, best_bank_cut, real_photos, yes_no_pairs

        spec, _, feats, own = real_photos(model)
        pairs = yes_no_pairs(model, feats, spec)
        fitted = yes_no_thresholds(pairs)
        out.update(fitted, yes_z=round(fitted["yes_z"], 4))
        titles = []
        if "openclipart" in manifests:
            titles = [
                it.captions[0] for it in load_manifest(manifests["openclipart"], ("train",)) if it.captions
            ]
        rows = bank_rows(model, Calibration(out["domains"]), feats, spec, own, titles)
        cut = best_bank_cut([r[1:] for r in rows.values()])
        out["bank_score"] = None if cut is None else round(cut, 4)
        yes_no = f"{len(pairs)} yes/no questions"
        for name, what in (("yes_z", yes_no), ("absent_share", yes_no), ("bank_score", "caption words")):
            out["calibrated_on"][name] = (
                f"{what} of {len(feats)} real photos (training/eval/real_photos.json; `xmodal eval` "
                "scores each photo with thresholds fitted on the others)"
            )
    return out


def calibrate_on_corpora(model) -> dict:
    """`calibrate` on whichever of easy-vqa, openclipart and photos are prepared under XMODAL_HOME."""
    from training.data.corpora import corpus_manifest
    from training.errors import XModalError

    manifests = {}
    for name in ("easy-vqa", "openclipart", "photos"):
        try:
            manifests[name] = corpus_manifest(name)
        except XModalError:
            continue
    return calibrate(model, manifests)
