"""Evaluation: retrieval recall and prompt classification (`xmodal eval` is training/eval_cli.py).

Reusable pieces (the heads add VQA and caption metrics through training.heads.evaluate):

    retrieval_recall(img (N, D), txt (M, D), relevant (M, N) bool, ks)   -> {"t2i_R@1": ..., "i2t_R@1": ...}
    prompt_accuracy(img (N, D), class_emb (C, D), labels (N,))          -> accuracy
    embed_items(model, keyed_images)                                    -> (N, D); locked towers: cached
    evaluate_retrieval(model, "openclipart"), evaluate_classification(model, "fashion-mnist")
    evaluate_photos_among(model, "photos", "openclipart")  real photos by caption among clip art

Fashion-MNIST accuracy by class prompts is *zero-shot* only for a model that never trained on it;
otherwise it is named "prompt classification on a held-out split" (DESIGN.md, "Honest evaluation").
"""

import contextlib
import dataclasses
import re

import torch
from tqdm import tqdm

from training.errors import XModalError
from training.model import XModalModel


def retrieval_recall(img: torch.Tensor, txt: torch.Tensor, relevant: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Recall@k both ways. `relevant[q, i]` says text q describes image i (a title shared by several
    test images makes each of them a hit). t2i: fraction of texts with a relevant image in the top k;
    i2t: fraction of images with a relevant text in the top k."""
    sims = txt @ img.T  # (M, N)
    out = {}
    for k in ks:
        top_i = sims.topk(min(k, sims.shape[1]), dim=1).indices  # (M, k)
        out[f"t2i_R@{k}"] = relevant.gather(1, top_i).any(1).float().mean().item()
        top_t = sims.T.topk(min(k, sims.shape[0]), dim=1).indices  # (N, k)
        out[f"i2t_R@{k}"] = relevant.T.gather(1, top_t).any(1).float().mean().item()
    return out


def prompt_accuracy(img: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images whose most similar class embedding is their label."""
    return (img @ class_emb.T).argmax(1).eq(labels).float().mean().item()


@torch.no_grad()
def embed_items(model: XModalModel, keyed_images: dict[str, object], batch_size: int = 64) -> torch.Tensor:
    """(N, D) normalised image embeddings in key order; locked image towers go through the feature cache."""
    from training.tasks import load_rgb

    model.eval()
    keys = list(keyed_images)
    if model.image_locked:
        from training.features import FeatureStore

        store = FeatureStore(model, batch_size=batch_size)
        store.prepare_images(keyed_images)
        feats = store.images(keys)
        return torch.cat(
            [
                model.image_head(feats[i : i + 4096].to(model.device), normalize=True).cpu()
                for i in range(0, len(keys), 4096)
            ]
        )
    out = []
    for i in tqdm(range(0, len(keys), batch_size), desc="embed images", unit="batch"):
        pix = torch.stack([model.preprocess(load_rgb(keyed_images[k])) for k in keys[i : i + batch_size]])
        out.append(model.encode_image(pix.to(model.device), normalize=True).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: XModalModel, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """(N, D) normalised text embeddings; locked text towers go through the feature cache."""
    if model.text_locked:
        from training.features import FeatureStore

        store = FeatureStore(model, batch_size=batch_size)
        store.prepare_texts(texts)
        feats = store.texts(texts).to(model.device)
        return torch.cat([model.text_head(feats[i : i + 4096], normalize=True).float().cpu()
                          for i in range(0, len(texts), 4096)])  # fmt: skip
    return torch.cat([model.embed_texts(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])


def _split_items(corpus: str, split: str | None, limit: int | None):
    """(key, path, item) of the corpus's images in `split` (None: every split), a seeded sample of `limit`."""
    from training.data.corpora import corpus_manifest
    from training.data.manifest import load_manifest, media_path

    manifest = corpus_manifest(corpus)
    items = [it for it in load_manifest(manifest, (split,) if split else None) if it.media == "image"]
    if limit is not None and limit < len(items):
        g = torch.Generator().manual_seed(0)
        items = [items[i] for i in sorted(torch.randperm(len(items), generator=g)[:limit].tolist())]
    if not items:
        raise XModalError(f"corpus {corpus!r} has no {f'{split} ' if split else ''}images to evaluate on")
    return [(f"{manifest.parent.name}/{it.id}", media_path(manifest, it), it) for it in items]


def _caption_queries(items: list, gallery_size: int) -> tuple[list[str], torch.Tensor]:
    """The distinct first captions of `items` (the first len(items) of a gallery) as queries, and which
    gallery images each one describes: relevant (queries, gallery_size) bool."""
    queries = sorted({it.captions[0].strip().lower() for _, _, it in items})
    index = {q: n for n, q in enumerate(queries)}
    relevant = torch.zeros(len(queries), gallery_size, dtype=torch.bool)
    for i, (_, _, it) in enumerate(items):
        relevant[index[it.captions[0].strip().lower()], i] = True
    return queries, relevant


def evaluate_retrieval(
    model: XModalModel, corpus: str = "openclipart", split: str = "test", limit: int | None = None
) -> dict:
    """Text<->image recall@1/5/10 with each item's first caption as its query; reports the gallery."""
    items = [x for x in _split_items(corpus, split, limit) if x[2].captions]
    queries, relevant = _caption_queries(items, len(items))
    img = embed_items(model, {key: path for key, path, _ in items})
    txt = embed_texts(model, queries)
    metrics = retrieval_recall(img, txt, relevant)
    return {**{k: round(v, 4) for k, v in metrics.items()}, "gallery": len(items), "queries": len(queries)}


def evaluate_photos_among(
    model: XModalModel, photos: str = "photos", distractors: str = "openclipart", limit: int | None = None
) -> dict:
    """Real photos found by their own first caption in a gallery of every photo plus the distractor
    corpus's test images (clip art): text->image recall over the photo captions. No preset trains on
    photos, so this measures how a model trained on drawings treats real photos among drawings."""
    shots = [x for x in _split_items(photos, None, None) if x[2].captions]
    if not shots:
        raise XModalError(f"corpus {photos!r} has no captioned images to evaluate on")
    gallery = shots + _split_items(distractors, "test", limit)
    queries, relevant = _caption_queries(shots, len(gallery))
    img = embed_items(model, {key: path for key, path, _ in gallery})
    recall = retrieval_recall(img, embed_texts(model, queries), relevant)
    t2i = {k: round(v, 4) for k, v in recall.items() if k.startswith("t2i")}
    return {**t2i, "photos": len(shots), "gallery": len(gallery)}


def evaluate_classification(
    model: XModalModel, corpus: str = "fashion-mnist", split: str = "test", limit: int | None = None
) -> dict:
    """Accuracy of nearest class prompt. A class's prompts are the distinct captions of its items
    (the corpus's caption templates); its embedding is their normalised mean."""
    items = _split_items(corpus, split, limit)
    missing = [key for key, _, it in items if "label" not in it.meta]
    if missing:
        raise XModalError(f"corpus {corpus!r}: item {missing[0]} has no meta.label to classify by")
    classes = sorted({it.meta["label"] for _, _, it in items})
    prompts = {
        c: sorted({cap for _, _, it in items if it.meta["label"] == c for cap in it.captions})
        for c in classes
    }
    if any(not p for p in prompts.values()):
        prompts = {c: p or [f"a photo of a {c}."] for c, p in prompts.items()}
    class_emb = torch.stack(
        [torch.nn.functional.normalize(embed_texts(model, prompts[c]).mean(0), dim=0) for c in classes]
    )
    labels = torch.tensor([classes.index(it.meta["label"]) for _, _, it in items])
    img = embed_items(model, {key: path for key, path, _ in items})
    return {
        "accuracy": round(prompt_accuracy(img, class_emb, labels), 4),
        "images": len(items),
        "classes": len(classes),
    }


def evaluate_model(
    model: XModalModel,
    card: dict,
    retrieval: str = "openclipart",
    classify: str = "fashion-mnist",
    limit: int | None = None,
) -> dict:
    """Every metric for card.json["metrics"], named honestly given the model's training data."""
    trained_on = set(card.get("data", {}).get("corpora", []))
    cls_name = "prompt_classification_heldout" if classify in trained_on else "zero_shot"
    out = {
        f"{retrieval}/test": evaluate_retrieval(model, retrieval, limit=limit),
        f"{classify}/test/{cls_name}": evaluate_classification(model, classify, limit=limit),
    }
    with contextlib.suppress(XModalError):  # without a prepared photos corpus there is no such figure
        out[f"photos/among_{retrieval}_test"] = evaluate_photos_among(model, "photos", retrieval, limit)
    from training.understand import Calibration

    with contextlib.suppress(XModalError):
        bank = [it.captions[0] for _, _, it in _split_items(retrieval, "train", None) if it.captions]
        out["photos/real_set"] = evaluate_real_photos(model, Calibration.from_card(card), bank)
    with contextlib.suppress(XModalError):
        out["videos/real_set"] = evaluate_videos(model)
    if getattr(model, "heads", None):
        from training.data.corpora import corpus_manifest
        from training.heads.evaluate import evaluate_heads

        manifests = {}
        for name in ("easy-vqa", "openclipart"):
            try:
                manifests[name] = corpus_manifest(name)
            except XModalError:
                continue
        out["heads"] = evaluate_heads(model, manifests)
    return out


@dataclasses.dataclass
class YesNo:
    """One yes/no question of the real-photo set, as the solvers score it."""

    photo: str
    z: float  # zero-shot z-score of its thing (understand.yes_no_scores)
    share: float | None  # the tower's classes of its thing (understand.class_share)
    yes: bool  # the accepted answer is yes


def yes_no_pairs(model: XModalModel, feats: dict, spec: dict) -> list[YesNo]:
    """Every yes/no question of the real-photo set, scored."""
    from training.questions import parse_question
    from training.understand import class_share, yes_no_scores

    out = []
    for k, feat in feats.items():
        for qa in spec[k]["questions"]:
            q = parse_question(qa["question"])
            if q.kind in ("presence", "identity"):
                z = float(yes_no_scores(model, feat.embedding[None].to(model.device), [q.target])[0])
                out.append(YesNo(k, z, class_share(model, feat, q.target), qa["answers"] == ["yes"]))
    return out


def _held_out_yes_no(model: XModalModel, feats: dict, spec: dict) -> dict[str, dict]:
    """Per photo, the yes/no thresholds (yes_z, absent_share) fitted on the OTHER photos' questions."""
    from training.understand import yes_no_thresholds

    pairs = yes_no_pairs(model, feats, spec)
    return {k: yes_no_thresholds([p for p in pairs if p.photo != k]) for k in feats}


def real_photo_set() -> dict:
    """The hand-written real-photo evaluation set (training/eval/real_photos.json)."""
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "eval" / "real_photos.json").read_text())


@torch.no_grad()
def real_photos(model: XModalModel) -> tuple[dict, dict, dict, dict]:
    """The real-photo set's photos: (spec, PIL images, ImageFeatures, own first caption), keyed by id."""
    from training.tasks import load_rgb
    from training.understand import image_features

    spec = real_photo_set()["photos"]
    paths = {it.id: (path, it) for _, path, it in _split_items("photos", None, None) if it.id in spec}
    if not paths:
        raise XModalError(
            "the photos corpus holds none of the real-photo set's photos; run `xmodal data photos`"
        )
    keys = sorted(paths)
    model.eval()
    images = {k: load_rgb(paths[k][0]) for k in keys}
    feats = {}
    for i in range(0, len(keys), 8):
        chunk = keys[i : i + 8]
        pix = torch.stack([model.preprocess(images[k]) for k in chunk])
        feats.update(zip(chunk, image_features(model, pix), strict=True))
    return spec, images, feats, {k: paths[k][1].captions[0] for k in keys}


def caption_hit(caption: str, words: list[str]) -> bool:
    """The caption holds one of the accepted words (or accepted phrases)."""
    text = caption.lower()
    found = set(re.findall(r"[a-z]+", text))
    return any(w in found or (" " in w and w in text) for w in words)


@torch.no_grad()
def bank_rows(model: XModalModel, calibration, feats: dict, spec: dict, own: dict, bank: list[str]) -> dict:
    """Per photo: (its 5 nearest bank captions, never its own; best bank score; whether the best bank
    caption holds an accepted word; whether the caption made without a bank does)."""
    from training.understand import caption_image, is_junk

    texts = sorted({t for t in bank if not is_junk(t)} | set(own.values()))
    emb = embed_texts(model, texts)
    no_bank = dataclasses.replace(calibration, bank_score=None)
    rows = {}
    for k, feat in feats.items():
        sims = emb @ feat.embedding
        ranked = [(texts[j], float(sims[j])) for j in sims.argsort(descending=True)[:6].tolist()]
        ranked = [(t, s) for t, s in ranked if t != own[k]][:5]  # leave this photo's own caption out
        fallback = caption_image(model, feat, no_bank)[0].text
        words = spec[k]["caption_words"]
        rows[k] = (ranked, ranked[0][1], caption_hit(ranked[0][0], words), caption_hit(fallback, words))
    return rows


def best_bank_cut(rows: list[tuple[float, bool, bool]]) -> float | None:
    """The bank score from which taking the bank caption instead of the other caption gains the most
    accepted captions over `rows` (score, bank right, other right); None when the bank never helps."""
    best, best_hits = None, sum(other for _, _, other in rows)
    for cut in sorted({s for s, _, _ in rows}, reverse=True):
        hits = sum(bank if s >= cut else other for s, bank, other in rows)
        if hits > best_hits:
            best, best_hits = cut, hits
    return best


@torch.no_grad()
def evaluate_real_photos(model: XModalModel, calibration, bank: list[str] | None = None) -> dict:
    """The real-photo set through the service's solvers (training/understand.py): VQA top-1 (per question
    kind too), caption hit rate (the top caption holds an accepted word), text->photo R@1/R@5 over all
    photos by their own captions. The caption bank (`bank`, e.g. clip-art titles, plus every OTHER photo's
    caption) never holds the evaluated photo's own caption, and each photo's yes/no and bank thresholds
    are fitted on the other photos (leave one photo out)."""
    from training.questions import parse_question
    from training.understand import answer_question, caption_image

    spec, images, feats, own = real_photos(model)
    keys = sorted(feats)
    yes_no = _held_out_yes_no(model, feats, spec)
    rows = bank_rows(model, calibration, feats, spec, own, bank or [])
    right, per_kind, methods, hits, solvers = [], {}, {}, [], {}
    for k in keys:
        feat = feats[k]
        cut = best_bank_cut([r[1:] for o, r in rows.items() if o != k])
        held_out = dataclasses.replace(calibration, **yes_no[k], bank_score=cut)
        cap = caption_image(model, feat, held_out, rows[k][0], k=1, image=images[k])[0]
        methods[cap.method] = methods.get(cap.method, 0) + 1
        hits.append(caption_hit(cap.text, spec[k]["caption_words"]))
        for qa in spec[k]["questions"]:
            ans = answer_question(model, feat, images[k], qa["question"], held_out, k=1)[0]
            ok = not ans.unsure and ans.text.lower() in qa["answers"]
            right.append(ok)
            kind = parse_question(qa["question"]).kind
            per_kind.setdefault(kind, []).append(ok)
            solvers[ans.method] = solvers.get(ans.method, 0) + 1
    captions = [own[k] for k in keys]
    relevant = torch.tensor([[captions[q] == own[k] for k in keys] for q in range(len(keys))])
    img = torch.stack([feats[k].embedding for k in keys])
    recall = retrieval_recall(img, embed_texts(model, captions), relevant, ks=(1, 5))
    return {
        "vqa_top1": round(sum(right) / len(right), 4),
        **{f"vqa_{kind}": round(sum(v) / len(v), 4) for kind, v in sorted(per_kind.items())},
        "caption_hit_rate": round(sum(hits) / len(hits), 4),
        "t2i_R@1": round(recall["t2i_R@1"], 4),
        "t2i_R@5": round(recall["t2i_R@5"], 4),
        "photos": len(keys),
        "questions": len(right),
        "caption_methods": methods,
        "vqa_solvers": solvers,
    }


@torch.no_grad()
def evaluate_videos(model: XModalModel) -> dict:
    """Text->video R@1 (and R@5) with the real-photo set's hand-written video queries (not the captions)
    over every video of the videos corpus, each by its whole-video vector (training/video.py)."""
    from training.data.corpora import corpus_manifest
    from training.data.manifest import load_manifest, media_path
    from training.video import VideoConfig, sample_video

    manifest = corpus_manifest("videos")
    videos = [it for it in load_manifest(manifest) if it.media == "video"]
    if not videos:
        raise XModalError("corpus 'videos' has no videos to evaluate on")
    ids = [it.id for it in videos]
    model.eval()
    cfg = VideoConfig()  # the whole-video vector exactly as the index job samples it
    frames = [sample_video(media_path(manifest, it), cfg).frames for it in videos]
    pixels = [torch.stack([model.preprocess(f.convert("RGB")) for f in fs])[None] for fs in frames]
    vid = torch.cat([model.encode_video(p.to(model.device), normalize=True) for p in pixels]).float().cpu()
    queries = [q for q in real_photo_set()["videos"] if set(q["relevant"]) & set(ids)]
    relevant = torch.tensor([[i in q["relevant"] for i in ids] for q in queries])
    recall = retrieval_recall(vid, embed_texts(model, [q["query"] for q in queries]), relevant, ks=(1, 5))
    return {"t2v_R@1": round(recall["t2i_R@1"], 4), "t2v_R@5": round(recall["t2i_R@5"], 4),
            "videos": len(ids), "queries": len(queries)}  # fmt: skip
