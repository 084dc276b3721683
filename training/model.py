"""The one embedding API every xmodal model exposes, whatever its towers.

    model.preprocess(pil_image)            -> (3, H, W) float tensor (eval transform)
    model.tokenize(["a cow", ...])         -> dict of (B, L) tensors
    model.encode_image(images, normalize)  -> (B, D)     images: (B, 3, H, W)
    model.encode_text(tokens, normalize)   -> (B, D)
    model.encode_video(frames, normalize)  -> (B, D)     frames: (B, T, 3, H, W)
    model.logit_scale                      -> learnable log temperature (CLIP's)

For heads (captioning, VQA) that need more than one vector per input:

    model.image_tokens(images)             -> (B, N, image_token_dim) spatial tokens of the image tower
    model.text_tokens(tokens)              -> ((B, L, text_token_dim), mask (B, L) bool, True = real token)

Models whose towers can be locked split each encoder in two, so locked-tower outputs can be cached
(training/features.py): encode_image(x) == image_head(image_tower(x)), likewise for text, and
`image_locked` / `text_locked` say whether the tower part has no trainable parameters.

Subclasses wrap an open_clip model (`OpenClipModel`) or a pair of pretrained towers with projection
heads (`LitModel`, training/towers.py). `model.config` is the ModelConfig it was built from, so
`save_model`/`load_model` (training/factory.py) can rebuild it exactly.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


@dataclass
class ModelConfig:
    name: str  # registry name, e.g. "tiny-clip" or "openclip:ViT-B-32"
    kind: str  # "openclip" or "lit"
    openclip: dict[str, Any] | None = None  # open_clip model_cfg (kind "openclip")
    openclip_pretrained: str | None = None  # open_clip tag; needs internet, never used in tests
    lit: dict[str, Any] | None = None  # tower and projection settings (kind "lit", see towers.py)
    heads: dict[str, Any] = field(default_factory=dict)  # caption / vqa head configs (training/heads)


class XModalModel(nn.Module):
    """Base class: subclasses implement preprocess, tokenize, encode_image, encode_text, image_tokens
    and text_tokens."""

    config: ModelConfig
    embed_dim: int
    image_size: int
    image_token_dim: int  # channels of image_tokens()
    text_token_dim: int  # channels of text_tokens()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    image_locked: bool = False
    text_locked: bool = False

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, F) tower outputs that image_head maps to the shared space."""
        raise NotImplementedError(f"{type(self).__name__} has no separable image tower")

    def image_head(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no separable image tower")

    def text_tower(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokens -> (B, F) tower outputs that text_head maps to the shared space."""
        raise NotImplementedError(f"{type(self).__name__} has no separable text tower")

    def text_head(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no separable text tower")

    def encode_video(self, frames: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Mean of the normalised frame embeddings; (B, T, 3, H, W) -> (B, D)."""
        b, t = frames.shape[:2]
        per_frame = self.encode_image(frames.flatten(0, 1), normalize=True).view(b, t, -1)
        video = per_frame.mean(1)
        return F.normalize(video, dim=-1) if normalize else video

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """Convenience for callers outside the hot path: PIL images -> (B, D) normalised, on CPU."""
        batch = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        return self.encode_image(batch, normalize=True).float().cpu()

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Convenience: strings -> (B, D) normalised, on CPU."""
        tokens = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        return self.encode_text(tokens, normalize=True).float().cpu()


class OpenClipModel(XModalModel):
    """Any open_clip architecture, by config; the wrapped `clip` is a plain open_clip model."""

    def __init__(self, config: ModelConfig, clip: nn.Module, preprocess, tokenizer):
        super().__init__()
        self.config = config
        self.clip = clip
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self.embed_dim = config.openclip["embed_dim"]
        size = config.openclip["vision_cfg"].get("image_size", 224)
        self.image_size = size if isinstance(size, int) else size[0]
        self.image_token_dim = config.openclip["vision_cfg"].get("width", 768)
        self.text_token_dim = config.openclip["text_cfg"].get("width", 512)

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self._tokenizer(list(texts))}

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_text(tokens["input_ids"], normalize=normalize)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens of the ViT after its final norm, class token excluded: (B, N, width)."""
        visual = self.clip.visual
        _, tokens = visual._pool(visual.transformer(visual._embeds(images)))
        return tokens

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token states of the (causal) text transformer after ln_final; padding (id 0) is masked."""
        ids = tokens["input_ids"]
        clip = self.clip
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(ids).to(cast) + clip.positional_embedding.to(cast)  # (B, L, W)
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        return x, ids != 0
