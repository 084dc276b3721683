"""A Hugging Face transformers CLIP or SigLIP dual encoder behind the one embedding API (training/model.py).

    dir/config.json (model_type "clip" | "siglip"), model.safetensors (or pytorch_model.bin),
    tokenizer files, preprocessor_config.json          <- what `save_pretrained` writes

Built by transformers' own classes (AutoModel, AutoTokenizer, AutoImageProcessor), so each model keeps
its own tokenizer, context length, preprocessing and, for SigLIP, its sigmoid score with a bias.
"""

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from training.errors import XModalError
from training.model import ModelConfig, XModalModel

MODEL_TYPES = ("clip", "siglip")


class HFDualEncoder(XModalModel):
    """transformers CLIPModel / SiglipModel; `hf` is the transformers model itself."""

    def __init__(self, config: ModelConfig, hf: nn.Module, tokenizer, processor):
        super().__init__()
        self.config = config
        self.hf = hf
        self.tokenizer = tokenizer
        self.processor = processor
        self.image_size = hf.config.vision_config.image_size
        self.context_length = hf.config.text_config.max_position_embeddings
        with torch.no_grad():  # dims from one tiny forward: CLIP projects, SigLIP keeps its widths
            probe = self.tokenize(["a"])
            self.embed_dim = self.encode_text(probe).shape[-1]
            self.text_token_dim = self.text_tokens(probe)[0].shape[-1]
        self.image_token_dim = hf.config.vision_config.hidden_size

    @classmethod
    def from_dir(cls, path: Path, config: ModelConfig | None = None) -> "HFDualEncoder":
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        try:  # transformers reads .bin with torch.load(weights_only=True) and prefers safetensors
            hf = AutoModel.from_pretrained(str(path))
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            processor = AutoImageProcessor.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise XModalError(f"transformers model dir {path}: {first}") from None
        model_type = hf.config.model_type
        if model_type not in MODEL_TYPES:
            raise XModalError(f"{path}: model_type {model_type!r}; expected one of {', '.join(MODEL_TYPES)}")
        config = config or ModelConfig(name=str(path), kind="hf", hf={"model_type": model_type})
        return cls(config, hf.eval(), tokenizer, processor)

    def save_files(self, out: Path) -> None:
        """The transformers layout (save_pretrained) of model, tokenizer and image processor."""
        self.hf.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        self.processor.save_pretrained(str(out))

    def lock_towers(self, image: bool, text: bool) -> None:
        """Freezes a tower with its projection (CLIP's visual/text_projection; SigLIP's heads are inside)."""
        for on, parts in (
            (image, ("vision_model", "visual_projection")),
            (text, ("text_model", "text_projection")),
        ):
            for name in parts if on else ():
                part = getattr(self.hf, name, None)
                if part is not None:
                    part.requires_grad_(False)

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.hf.logit_scale

    @property
    def logit_bias(self) -> torch.Tensor | None:
        return getattr(self.hf, "logit_bias", None)  # SigLIP only

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        # SigLIP was trained on max_length padding; CLIP pools at its end token, so the padding is inert
        out = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.context_length,
            return_tensors="pt",
        )  # fmt: skip
        return {k: out[k] for k in ("input_ids", "attention_mask") if k in out}

    def text_prefix(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CLIP: up to the batch's longest real text (transformers' CLIP text tower is always causal and
        pools at the end token, so later positions never reach it). SigLIP reads every position: uncut."""
        mask = tokens.get("attention_mask")
        if self.hf.config.model_type != "clip" or mask is None:
            return tokens
        n = int(mask.sum(-1).max())
        return {k: v[:, :n] for k, v in tokens.items()}

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.hf.get_image_features(pixel_values=images).pooler_output  # projected (B, D)
        return torch.nn.functional.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = False) -> torch.Tensor:
        x = self.hf.get_text_features(**tokens).pooler_output
        return torch.nn.functional.normalize(x, dim=-1) if normalize else x

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return self.hf.vision_model(pixel_values=images).last_hidden_state  # (B, N, C)

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.hf.text_model(**tokens).last_hidden_state  # (B, L, W)
        mask = tokens.get("attention_mask")
        if mask is None:
            pad = self.tokenizer.pad_token_id
            mask = tokens["input_ids"] != (pad if pad is not None else -1)
        return states, mask.bool()
