"""Trainer tasks for the heads (training/tasks.py's Task contract): VQATask and CaptionTask.

Data comes from corpus manifests: `qa_examples` reads Item.qa (easy-vqa), `caption_pairs` reads
Item.captions (openclipart, fashion-mnist). `head_config` gives the config a head needs for that data
(answer vocabulary, word vocabulary); `attach_heads` builds it into the model before training.

Image tokens and question tokens come from a FeatureStore (training/features.py): while the relevant
tower is frozen (no trainable parameter outside `model.heads`, or a locked tower) they are computed once
per image / question and cached (float16, CPU), so later epochs cost only the head's forward and
backward. Pass a prepared store (`features=`) to share rows across tasks and runs; without one a task
keeps its own in memory.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from training.data.manifest import load_manifest, media_path
from training.errors import XModalError
from training.features import FeatureStore
from training.heads.caption import build_vocab
from training.heads.inference import get_head
from training.model import XModalModel
from training.tasks import Pair, Task, epoch_order, rank_slices


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


class _HeadTask(Task):
    """What VQATask and CaptionTask share: their tower outputs come from `self.features`."""

    features: FeatureStore | None = None

    def store(self, model: XModalModel) -> FeatureStore:
        if self.features is None:
            self.features = FeatureStore(model)
        return self.features


class VQATask(_HeadTask):
    """Cross-entropy of the VQA head over its answer vocabulary, one question per example."""

    name = "vqa"

    def __init__(
        self,
        examples: list[QAExample],
        batch_size: int,
        weight: float = 1.0,
        features: FeatureStore | None = None,
    ):
        if not examples:
            raise XModalError("vqa task: no QA pairs in the given manifests and splits")
        self.examples = examples
        self.global_batch = batch_size
        self.weight = weight
        self.features = features

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
        store = self.store(model)
        image = store.image_tokens(batch["keys"], batch["images"])
        q, q_mask = store.text_tokens(batch["questions"])
        return head.loss(head(image, q, q_mask), batch["answers"])


class CaptionTask(_HeadTask):
    """Teacher-forced cross-entropy of the caption decoder; each step uses every caption of an item
    in turn (caption index = epoch mod count), so resumed and sharded runs see the same targets."""

    name = "caption"

    def __init__(
        self, pairs: list[Pair], batch_size: int, weight: float = 1.0, features: FeatureStore | None = None
    ):
        if not pairs:
            raise XModalError("caption task: no captioned images in the given manifests and splits")
        self.pairs = pairs
        self.global_batch = batch_size
        self.weight = weight
        self.features = features

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
        return head.loss(self.store(model).image_tokens(batch["keys"], batch["images"]), batch["captions"])
