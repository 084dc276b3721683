"""The service's batched functions: text and image embedding, image understanding (the one image
forward that caption, VQA and classify share) and index search, as MicroBatcher pipelines."""

import json
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from app.batching import MicroBatcher, Pipeline
from app.config import BatchSettings
from app.graphs import text_encoder
from training.devices import inference_autocast, to_device
from training.understand import ImageFeatures, image_features


def _text_forward(model, texts: list[str]) -> torch.Tensor:
    # tokenized per batch: tokenizers that pad to the longest text need the whole batch at once
    tokens = {k: to_device(v, model.device) for k, v in model.tokenize(texts).items()}
    with inference_autocast(model):
        return text_encoder(model)(tokens).float()  # (B, D)


def _image_preprocess(model, image: Image.Image) -> torch.Tensor:
    return model.preprocess(image)  # (3, H, W)


def _image_forward(model, images: torch.Tensor) -> torch.Tensor:
    with inference_autocast(model):
        return model.encode_image(to_device(images, model.device), normalize=True).float()  # (B, D)


class Query(NamedTuple):
    vector: np.ndarray  # (D,) float32, normalised
    k: int
    media: str | None
    where: dict | None
    unique: bool = True  # leave out twins (LoadedIndex.search)


def _search_forward(index, queries: list[Query]) -> list:
    """One FAISS search per distinct filter over all its queries ((Q, D) scans the vectors once, where
    Q single searches scan them Q times); each query keeps its own k."""
    results: list = [None] * len(queries)
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(json.dumps([q.media, q.where, q.unique], sort_keys=True, default=str), []).append(i)
    for members in groups.values():
        first = queries[members[0]]
        batch = np.stack([queries[i].vector for i in members]).astype("float32")  # (Q, D)
        hits = index.search(batch, max(queries[i].k for i in members), first.media, first.where, first.unique)
        for i, h in zip(members, hits, strict=True):
            results[i] = h[: queries[i].k]
    return results


class TextQuery(NamedTuple):
    text: str
    index: object  # the LoadedIndex to search (of the state the request holds)
    k: int
    media: str | None
    where: dict | None


def _text_search_forward(model, queries: list[TextQuery]) -> list:
    """Text search in one hop: one text forward for the batch, then one search per index and filter."""
    vectors = _text_forward(model, [q.text for q in queries]).float().cpu().numpy()  # (B, D)
    results: list = [None] * len(queries)
    by_index: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        by_index.setdefault(id(q.index), []).append(i)
    for members in by_index.values():
        found = _search_forward(
            queries[members[0]].index,
            [Query(vectors[i], queries[i].k, queries[i].media, queries[i].where) for i in members],
        )
        for i, hits in zip(members, found, strict=True):
            results[i] = hits
    return results


TEXT = Pipeline("encode_text", preprocess=lambda model, text: text, forward=_text_forward, collate=list)
IMAGE = Pipeline("encode_image", preprocess=_image_preprocess, forward=_image_forward)
# pooled output, tokens, embedding and class probabilities of each image, from one tower forward
UNDERSTAND = Pipeline("understand_image", preprocess=_image_preprocess, forward=image_features)
SEARCH = Pipeline("search", preprocess=lambda index, q: q, forward=_search_forward, collate=list)
# encode + search fused: /v1/search/text crosses threads once instead of twice
TEXT_SEARCH = Pipeline(
    "text_search", preprocess=lambda model, q: q, forward=_text_search_forward, collate=list
)


class Encoders:
    """One micro-batcher per model function (and one for index search); `enabled=False` means
    batches of one. Batches hold up to the batch size for `device`, the one models serve on."""

    def __init__(self, cfg: BatchSettings, device: torch.device = torch.device("cpu")):
        size = cfg.max_batch_size.for_device(device) if cfg.enabled else 1
        wait = cfg.max_wait_ms if cfg.enabled else 0.0
        opts = dict(max_batch_size=size, max_wait_ms=wait, max_queue=cfg.max_queue, timeout_s=cfg.timeout_s)
        self.text = MicroBatcher(TEXT, **opts)
        self.image = MicroBatcher(IMAGE, **opts)
        self.understand = MicroBatcher(UNDERSTAND, **opts)
        self.search_batcher = MicroBatcher(SEARCH, **opts)
        self.text_search_batcher = MicroBatcher(TEXT_SEARCH, **opts)

    async def encode_text(self, model, text: str) -> torch.Tensor:
        """(D,) normalised float32 embedding of one text."""
        return await self.text.submit(model, text)

    async def encode_image(self, model, image: Image.Image) -> torch.Tensor:
        """(D,) normalised float32 embedding of one image."""
        return await self.image.submit(model, image)

    async def image_features(self, model, image: Image.Image) -> ImageFeatures:
        """Everything the caption, VQA and classify solvers need from one image, batched with
        concurrent requests."""
        return await self.understand.submit(model, image)

    async def search(
        self, index, vector: torch.Tensor, k: int, media: str | None, where: dict | None, unique: bool = True
    ) -> list:
        """Hits for one (D,) query vector on a LoadedIndex, searched together with concurrent queries."""
        query = Query(np.ascontiguousarray(vector.numpy(), dtype="float32"), k, media, where, unique)
        return await self.search_batcher.submit(index, query)

    async def text_search(self, model, query: TextQuery) -> list:
        """Hits for one text query: encoded and searched together with concurrent text queries."""
        return await self.text_search_batcher.submit(model, query)

    def close(self) -> None:
        self.text_search_batcher.close()
        self.text.close()
        self.image.close()
        self.understand.close()
        self.search_batcher.close()
