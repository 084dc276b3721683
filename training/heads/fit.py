"""Training heads alone on a frozen encoder: everything outside `model.heads` is frozen, then the one
training loop (training/loop.py) minimises the tasks' weighted loss. Multi-task runs that also train the
towers go through `xmodal train` (training/train.py) with the same Task objects and the same loop."""

from dataclasses import asdict, dataclass

import torch

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
    {"seconds", "loss/<task>"} (the last step's losses); leaves the model in eval mode."""
    torch.manual_seed(seed)
    opt = adamw(freeze_encoder(model), lr, weight_decay=0.01)
    total = epochs * tasks[0].batches_per_epoch(1)
    out = train_steps(model, tasks, opt, total, lr, total // 10, seed=seed, desc="heads", progress=progress)
    model.eval()
    return out


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
    from training.features import FeatureStore
    from training.heads import attach_heads
    from training.heads.evaluate import easy_vqa_pairs, vqa_accuracy
    from training.heads.tasks import CaptionTask, VQATask, caption_pairs, qa_examples

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
    store = FeatureStore(model)  # image and question tokens, computed once and kept on disk
    store.prepare_images({x.key: x.image for x in train_qa + test_qa + cap_pairs}, tokens=True)
    store.prepare_texts({e.question for e in train_qa + test_qa}, tokens=True)

    torch.manual_seed(r.seed)
    vqa = VQATask(train_qa, batch_size=min(r.vqa_batch, len(train_qa)), features=store)
    attach_heads(model, {"vqa": vqa.head_config(r.fusion)})
    vqa_fit = train_heads(model, [vqa], epochs=r.vqa_epochs, lr=2e-3, seed=r.seed)
    caption = CaptionTask(cap_pairs, batch_size=min(r.caption_batch, len(cap_pairs)), features=store)
    attach_heads(model, {"caption": caption.head_config(min_count=2, max_len=20)})
    cap_fit = train_heads(model, [caption], epochs=r.caption_epochs, lr=1e-3, seed=r.seed)

    acc = vqa_accuracy(model, test_qa, store)
    base = read_card(model_dir)
    base.pop("fingerprint", None)  # the weights change: save_model writes the new one
    heads_card = {
        "recipe": asdict(r),
        "train_s": {"vqa": round(vqa_fit["seconds"], 1), "caption": round(cap_fit["seconds"], 1)},
        **{f"{r.vqa_corpus}/test/{k}": v for k, v in acc.items()},
    }
    save_model(model, model_dir, {**base, "heads": heads_card})
    return read_card(model_dir)
