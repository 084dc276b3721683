"""The service's batched model functions: text and image embedding, as MicroBatcher pipelines."""

import torch
from PIL import Image

from app.batching import MicroBatcher, Pipeline
from app.config import BatchSettings


def _text_forward(model, texts: list[str]) -> torch.Tensor:
    # tokenized per batch: tokenizers that pad to the longest text need the whole batch at once
    tokens = {k: v.to(model.device) for k, v in model.tokenize(texts).items()}
    return model.encode_text(tokens, normalize=True)  # (B, D)


def _image_preprocess(model, image: Image.Image) -> torch.Tensor:
    return model.preprocess(image)  # (3, H, W)


def _image_forward(model, images: torch.Tensor) -> torch.Tensor:
    return model.encode_image(images.to(model.device), normalize=True)  # (B, D)


TEXT = Pipeline("encode_text", preprocess=lambda model, text: text, forward=_text_forward, collate=list)
IMAGE = Pipeline("encode_image", preprocess=_image_preprocess, forward=_image_forward)


class Encoders:
    """One micro-batcher per model function; `enabled=False` means batches of one."""

    def __init__(self, cfg: BatchSettings):
        size = cfg.max_batch_size if cfg.enabled else 1
        wait = cfg.max_wait_ms if cfg.enabled else 0.0
        opts = dict(max_batch_size=size, max_wait_ms=wait, max_queue=cfg.max_queue, timeout_s=cfg.timeout_s)
        self.text = MicroBatcher(TEXT, **opts)
        self.image = MicroBatcher(IMAGE, **opts)

    async def encode_text(self, model, text: str) -> torch.Tensor:
        """(D,) normalised float32 embedding of one text."""
        return await self.text.submit(model, text)

    async def encode_image(self, model, image: Image.Image) -> torch.Tensor:
        """(D,) normalised float32 embedding of one image."""
        return await self.image.submit(model, image)

    def close(self) -> None:
        self.text.close()
        self.image.close()
