"""Trainer tasks for the heads (training/tasks.py's Task contract): VQATask and CaptionTask.

Data comes from corpus manifests: `qa_examples` reads Item.qa (easy-vqa), `caption_pairs` reads
Item.captions (openclipart, fashion-mnist). `head_config` gives the config a head needs for that data
(answer vocabulary, word vocabulary); `attach_heads` builds it into the model before training.

When the encoder is frozen (no trainable parameter outside `model.heads`, or a locked image tower),
image tokens and question tokens are computed once per image / question and cached (float16, CPU),
so later epochs cost only the head's forward and backward.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from training.data.manifest import load_manifest, media_path
from training.errors import XModalError
from training.heads.caption import build_vocab
from training.heads.inference import get_head
from training.model import XModalModel
from training.tasks import Pair, Task, epoch_order, load_rgb, rank_slices


@dataclass
class QAExample:
    key: str  # image key for the feature cache: "<corpus>/<item id>"
    image: object  # a path or a PIL image
    question: str
    answer: str
    type: str | None = None  # question family ("color", "shape", ...) for per-type accuracy


def _corpus_key(manifest: Path, item_id: str) -> str:
    return f"{manifest.parent.name}/{item_id}"


def qa_examples(manifest: str | Path, splits: tuple[str, ...] = ("train",)) -> list[QAExample]:
    """Every QA pair of the manifest's items in `splits`, one example per question."""
    manifest = Path(manifest)
    return [
        QAExample(_corpus_key(manifest, it.id), media_path(manifest, it), qa.question, qa.answer, qa.type)
        for it in load_manifest(manifest, splits)
        for qa in it.qa
    ]


def caption_pairs(manifest: str | Path, splits: tuple[str, ...] = ("train",)) -> list[Pair]:
    """One Pair per captioned image item in `splits`."""
    manifest = Path(manifest)
    return [
        Pair(_corpus_key(manifest, it.id), media_path(manifest, it), it.captions)
        for it in load_manifest(manifest, splits)
        if it.captions and it.media == "image"
    ]


def encoder_frozen(model: XModalModel) -> bool:
    """True when nothing outside the heads trains, so the towers' token outputs can be cached."""
    return not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("heads."))


class TokenCache:
    """Image and question tokens by key, float16 on CPU; filled lazily, used only while the encoder is
    frozen, or `always` (evaluation, where nothing trains)."""

    def __init__(self, always: bool = False):
        self.always = always
        self.images: dict[str, torch.Tensor] = {}  # key -> (N, Ci)
        self.texts: dict[str, torch.Tensor] = {}  # question -> (n_real, Ct)

    def image_tokens(self, model: XModalModel, keys: list[str], images: list) -> torch.Tensor:
        """(B, N, Ci) tokens for the batch's images; computed with grad unless the encoder is frozen."""
        device = model.device
        if not (self.always or encoder_frozen(model) or model.image_locked):
            return model.image_tokens(
                torch.stack([model.preprocess(load_rgb(im)) for im in images]).to(device)
            )
        todo = {k: im for k, im in zip(keys, images, strict=True) if k not in self.images}
        if todo:
            with torch.no_grad():
                pix = torch.stack([model.preprocess(load_rgb(im)) for im in todo.values()]).to(device)
                for k, t in zip(todo, model.image_tokens(pix), strict=True):
                    self.images[k] = t.half().contiguous().cpu()
        return torch.stack([self.images[k] for k in keys]).to(device).float()

    def text_tokens(self, model: XModalModel, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, L, Ct), mask (B, L)) for the batch's questions; cached per distinct question when frozen."""
        device = model.device
        if not (self.always or encoder_frozen(model) or model.text_locked):
            return model.text_tokens({k: v.to(device) for k, v in model.tokenize(texts).items()})
        todo = sorted({t for t in texts if t not in self.texts})
        if todo:
            with torch.no_grad():
                x, mask = model.text_tokens({k: v.to(device) for k, v in model.tokenize(todo).items()})
                for t, xi, mi in zip(todo, x, mask, strict=True):
                    self.texts[t] = xi[mi].half().contiguous().cpu()  # real tokens only; re-padded per batch
        rows = [self.texts[t] for t in texts]
        x = pad_sequence(rows, batch_first=True).to(device).float()
        lengths = torch.tensor([len(r) for r in rows], device=device)
        return x, torch.arange(x.shape[1], device=device) < lengths[:, None]


class VQATask(Task):
    """Cross-entropy of the VQA head over its answer vocabulary, one question per example."""

    name = "vqa"

    def __init__(self, examples: list[QAExample], batch_size: int, weight: float = 1.0):
        if not examples:
            raise XModalError("vqa task: no QA pairs in the given manifests and splits")
        self.examples = examples
        self.global_batch = batch_size
        self.weight = weight
        self.cache = TokenCache()

    def head_config(self, fusion: str = "early", **options) -> dict:
        """A VQA head config whose answer vocabulary is every answer in the training examples."""
        return {"answers": sorted({e.answer for e in self.examples}), "fusion": fusion, **options}

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.examples) // self.global_batch

    def batches(self, rank: int, world_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[dict]:
        order = epoch_order(len(self.examples), seed, epoch)
        for idx in rank_slices(order, self.global_batch, rank, world_size)[start:]:
            ex = [self.examples[i] for i in idx]
            yield {
                "keys": [e.key for e in ex],
                "images": [e.image for e in ex],
                "questions": [e.question for e in ex],
                "answers": [e.answer for e in ex],
            }

    def loss(self, model: XModalModel, batch: dict) -> torch.Tensor:
        head = get_head(model, "vqa")
        image = self.cache.image_tokens(model, batch["keys"], batch["images"])
        q, q_mask = self.cache.text_tokens(model, batch["questions"])
        return head.loss(head(image, q, q_mask), batch["answers"])


class CaptionTask(Task):
    """Teacher-forced cross-entropy of the caption decoder; each step uses every caption of an item
    in turn (caption index = epoch mod count), so resumed and sharded runs see the same targets."""

    name = "caption"

    def __init__(self, pairs: list[Pair], batch_size: int, weight: float = 1.0):
        if not pairs:
            raise XModalError("caption task: no captioned images in the given manifests and splits")
        self.pairs = pairs
        self.global_batch = batch_size
        self.weight = weight
        self.cache = TokenCache()

    def head_config(self, min_count: int = 1, **options) -> dict:
        """A caption head config whose vocabulary holds the training captions' words."""
        return {
            "vocab": build_vocab((c for p in self.pairs for c in p.captions), min_count=min_count),
            **options,
        }

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.pairs) // self.global_batch

    def batches(self, rank: int, world_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[dict]:
        order = epoch_order(len(self.pairs), seed, epoch)
        for idx in rank_slices(order, self.global_batch, rank, world_size)[start:]:
            ps = [self.pairs[i] for i in idx]
            yield {
                "keys": [p.key for p in ps],
                "images": [p.image for p in ps],
                "captions": [p.captions[epoch % len(p.captions)] for p in ps],
            }

    def loss(self, model: XModalModel, batch: dict) -> torch.Tensor:
        head = get_head(model, "caption")
        return head.loss(self.cache.image_tokens(model, batch["keys"], batch["images"]), batch["captions"])
