"""Training heads alone on a frozen encoder: everything outside `model.heads` is frozen, then the one
training loop (training/loop.py) minimises the tasks' weighted loss. Multi-task runs that also train the
towers go through `xmodal train` (training/train.py) with the same Task objects and the same loop."""

import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from training.loop import adamw, train_steps
from training.model import XModalModel
from training.tasks import Task


def freeze_encoder(model: XModalModel) -> list[torch.nn.Parameter]:
    """Sets requires_grad=False outside model.heads; returns the head parameters that stay trainable."""
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("heads."))
        if p.requires_grad:
            trainable.append(p)
    return trainable


def train_heads(
    model: XModalModel, tasks: list[Task], epochs: int, lr: float = 1e-3, seed: int = 0, progress: bool = True
) -> dict:
    """Trains the heads for `epochs` passes over the first task's data; every step takes one batch of every
    task. AdamW (weight decay 0.01), warmup over the first tenth, then cosine decay. Returns train_steps'
    {"seconds", "samples_s", "loss", "loss/<task>"} (the last step's losses); leaves the model in eval
    mode."""
    torch.manual_seed(seed)
    opt = adamw(freeze_encoder(model), lr, weight_decay=0.01)
    total = epochs * tasks[0].batches_per_epoch(1)
    out = train_steps(model, tasks, opt, total, lr, total // 10, seed=seed, desc="heads", progress=progress)
    model.eval()
    return out


def fill_token_cache(model: XModalModel, cache, items: list[tuple[str, object]], path=None) -> dict:
    """Computes the image tokens of (key, image) items not yet in `cache` (a heads.tasks.TokenCache),
    loading and extending the on-disk copy at `path` (keyed by the image tower's digest by callers).
    Returns {"seconds", "images"}: how long computing tokens took in all, as recorded on disk."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    meta = {"seconds": 0.0, "images": 0}
    if path and path.is_file() and not cache.images:
        with safe_open(str(path), "pt") as f:
            meta = {k: float(v) for k, v in (f.metadata() or meta).items()}
        cache.images.update(load_file(str(path)))
    todo = [(k, im) for k, im in dict(items).items() if k not in cache.images]
    start = time.perf_counter()
    for i in tqdm(range(0, len(todo), 32), desc="image tokens", unit="batch", disable=not todo):
        chunk = todo[i : i + 32]
        cache.image_tokens(model, [k for k, _ in chunk], [im for _, im in chunk])
    meta = {"seconds": meta["seconds"] + time.perf_counter() - start, "images": meta["images"] + len(todo)}
    if path and todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(cache.images, str(path), metadata={k: str(v) for k, v in meta.items()})
    return meta


@dataclass
class HeadsRecipe:
    """How `fit_default_heads` trains the heads on a frozen encoder (the default preset's second stage)."""

    vqa_corpus: str = "easy-vqa"  # QA pairs (Item.qa) for the VQA head; its captions feed the caption head
    caption_corpora: tuple[str, ...] = ("openclipart",)  # extra captioned images for the caption head
    train_images: int = 1200  # seeded subset of the VQA corpus's train images (token extraction is the cost)
    caption_images: int = 300  # per extra caption corpus
    fusion: str = "early"  # bench/heads.py: early 0.994 at 1/8 of hybrid's training time
    vqa_epochs: int = 6
    caption_epochs: int = 8
    vqa_batch: int = 128  # capped at the number of examples, so a small corpus still trains
    caption_batch: int = 64
    seed: int = 0


def fit_default_heads(model_dir, recipe: HeadsRecipe | None = None) -> dict:
    """Adds a VQA head and a caption head to the saved model in `model_dir` (encoder frozen, so its
    embeddings do not change), evaluates them on the VQA corpus's test split and saves the model back
    with the metrics in its card. Returns the card."""
    import random
    from pathlib import Path

    from training.data.corpora import corpus_manifest
    from training.errors import XModalError
    from training.factory import load_model, read_card, save_model
    from training.heads import attach_heads
    from training.heads.evaluate import easy_vqa_pairs, vqa_accuracy
    from training.heads.tasks import CaptionTask, TokenCache, VQATask, caption_pairs, qa_examples
    from training.home import xmodal_home

    r = recipe or HeadsRecipe()
    model_dir = Path(model_dir)
    model = load_model(model_dir).eval()
    rng = random.Random(r.seed)
    qa_manifest = corpus_manifest(r.vqa_corpus)
    train_qa, test_qa = qa_examples(qa_manifest, ("train",)), qa_examples(qa_manifest, ("test",))
    images = sorted({e.key for e in train_qa})
    keep = set(rng.sample(images, min(r.train_images, len(images))))
    train_qa = [e for e in train_qa if e.key in keep]
    cap_pairs = [p for p in easy_vqa_pairs(qa_manifest, ("train",))[0] if p.key in keep]
    for corpus in r.caption_corpora:
        pairs = caption_pairs(corpus_manifest(corpus), ("train",))
        cap_pairs += rng.sample(pairs, min(r.caption_images, len(pairs)))

    if not train_qa or not cap_pairs:
        raise XModalError(f"heads: no QA pairs in {r.vqa_corpus!r} or no captioned images to train on")
    cache = TokenCache(always=True)
    digest = model.tower_digest("image") if hasattr(model, "tower_digest") else None
    cache_file = xmodal_home() / "cache" / f"heads-image-tokens-{digest}.safetensors" if digest else None
    items = [(e.key, e.image) for e in train_qa + test_qa] + [(p.key, p.image) for p in cap_pairs]
    fill_token_cache(model, cache, items, cache_file)

    torch.manual_seed(r.seed)
    vqa = VQATask(train_qa, batch_size=min(r.vqa_batch, len(train_qa)))
    vqa.cache = cache
    attach_heads(model, {"vqa": vqa.head_config(r.fusion)})
    vqa_fit = train_heads(model, [vqa], epochs=r.vqa_epochs, lr=2e-3, seed=r.seed)
    caption = CaptionTask(cap_pairs, batch_size=min(r.caption_batch, len(cap_pairs)))
    caption.cache = cache
    attach_heads(model, {"caption": caption.head_config(min_count=2, max_len=20)})
    cap_fit = train_heads(model, [caption], epochs=r.caption_epochs, lr=1e-3, seed=r.seed)

    acc = vqa_accuracy(model, test_qa, cache)
    base = read_card(model_dir)
    base.pop("fingerprint", None)  # the weights change: save_model writes the new one
    heads_card = {
        "recipe": asdict(r),
        "train_s": {"vqa": round(vqa_fit["seconds"], 1), "caption": round(cap_fit["seconds"], 1)},
        **{f"{r.vqa_corpus}/test/{k}": v for k, v in acc.items()},
    }
    save_model(model, model_dir, {**base, "heads": heads_card})
    return read_card(model_dir)
