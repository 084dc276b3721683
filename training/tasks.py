"""What the trainer optimises: a weighted sum of tasks, each yielding its own batches.

    class Task:
        name: str                                   # "contrastive", "vqa", "caption", ...
        weight: float                               # weight of its loss in the sum
        def batches_per_epoch(world_size) -> int
        def batches(rank, world_size, seed, epoch, start=0) -> Iterator[dict]
        def loss(model, batch) -> scalar Tensor

`batches` must be a pure function of (rank, world_size, seed, epoch): the trainer resumes a killed run
by asking for the same epoch again from batch `start`. Each rank gets its slice of the same global
batch, so N processes with batch B see exactly what one process with batch N*B sees.
"""

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from training.model import XModalModel


class Task:
    """Base class; see the module docstring for the contract."""

    name: str = "task"
    weight: float = 1.0

    def batches_per_epoch(self, world_size: int) -> int:
        raise NotImplementedError

    def batches(self, rank: int, world_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[dict]:
        raise NotImplementedError

    def loss(self, model: XModalModel, batch: dict) -> torch.Tensor:
        raise NotImplementedError


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A seeded permutation of range(n), different for every epoch, identical on every rank."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def rank_slices(order: Sequence[int], global_batch: int, rank: int, world_size: int) -> list[list[int]]:
    """Splits a permutation into full global batches (the tail is dropped) and keeps this rank's share."""
    local = global_batch // world_size
    return [
        list(order[b + rank * local : b + (rank + 1) * local])
        for b in range(0, len(order) - global_batch + 1, global_batch)
    ]


@dataclass
class Pair:
    """One training item for the contrastive task: an image (path or PIL) and its captions."""

    key: str  # stable id, used by the feature cache: "<corpus>/<item id>"
    image: object  # a path or a PIL image
    captions: list[str]


def load_rgb(image) -> Image.Image:
    return image.convert("RGB") if isinstance(image, Image.Image) else Image.open(image).convert("RGB")


class ContrastiveTask(Task):
    """Symmetric InfoNCE between images and one randomly chosen caption per item per epoch.

    With `features` (training/features.py) the locked towers' outputs are looked up, not recomputed.
    """

    name = "contrastive"

    def __init__(
        self, pairs: list[Pair], model: XModalModel, batch_size: int, weight: float = 1.0, features=None
    ):
        if not pairs:
            raise ValueError("contrastive task needs at least one item with a caption")
        self.pairs = pairs
        self.model = model
        self.global_batch = batch_size  # across all ranks
        self.weight = weight
        self.features = features
        self._loss_fn = None

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.pairs) // self.global_batch

    def batches(self, rank: int, world_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[dict]:
        order = epoch_order(len(self.pairs), seed, epoch)
        for idx in rank_slices(order, self.global_batch, rank, world_size)[start:]:
            items = [self.pairs[i] for i in idx]
            # The caption choice depends on (seed, epoch, item) only, so it survives resume and sharding.
            texts = [random.Random(f"{seed}/{epoch}/{p.key}").choice(p.captions) for p in items]
            batch = {"keys": [p.key for p in items], "texts": texts}
            if self.features is None:
                batch["images"] = torch.stack([self.model.preprocess(load_rgb(p.image)) for p in items])
            yield batch

    def embed(self, model: XModalModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, D) image and text embeddings of a batch."""
        device = model.device
        if self.features is not None:
            img = model.image_head(self.features.images(batch["keys"]).to(device), normalize=True)
            txt = model.text_head(self.features.texts(batch["texts"]).to(device), normalize=True)
        else:
            img = model.encode_image(batch["images"].to(device), normalize=True)
            tokens = {k: v.to(device) for k, v in model.tokenize(batch["texts"]).items()}
            txt = model.encode_text(tokens, normalize=True)
        return img, txt

    def loss(self, model: XModalModel, batch: dict) -> torch.Tensor:
        from training.loss import contrastive_loss

        img, txt = self.embed(model, batch)
        return contrastive_loss(img, txt, model.logit_scale.exp())
