"""The one embedding API every xmodal model exposes, whatever its towers.

    model.preprocess(pil_image)            -> (3, H, W) float tensor (eval transform)
    model.tokenize(["a cow", ...])         -> dict of (B, L) tensors
    model.encode_image(images, normalize)  -> (B, D)     images: (B, 3, H, W)
    model.encode_text(tokens, normalize)   -> (B, D)
    model.text_prefix(tokens)              -> the same tokens cut to the positions encode_text reads
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

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from training.errors import XModalError


@dataclass
class ModelConfig:
    name: str  # registry name or the reference it came from, e.g. "tiny-clip", "hf-hub:timm/ViT-B-16-SigLIP"
    kind: str  # "openclip", "lit" or "hf" (a transformers CLIP/SigLIP, training/hf_model.py)
    openclip: dict[str, Any] | None = None  # open_clip model_cfg (kind "openclip")
    openclip_pretrained: str | None = None  # open_clip tag; downloads into the HF cache when online
    # open_clip preprocess_cfg (size, mean, std, interpolation, resize_mode) of the pretrained weights
    openclip_preprocess: dict[str, Any] | None = None
    lit: dict[str, Any] | None = None  # tower and projection settings (kind "lit", see towers.py)
    hf: dict[str, Any] | None = None  # kind "hf": {"model_type": "clip" | "siglip"}; files in <dir>/hf
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

    def text_prefix(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`tokens` cut to the shortest prefix that gives the same encode_text (a hot-path saving for
        towers that pad to a fixed length); by default unchanged."""
        return tokens

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    image_locked: bool = False
    text_locked: bool = False
    logit_bias = None  # SigLIP-style models: the learned bias of their sigmoid scores

    def lock_towers(self, image: bool, text: bool) -> None:
        """Freezes the image and/or text tower for fine-tuning (LiT: a locked pretrained image tower).
        Models whose towers are locked by their config (LitModel) only check that they are."""
        if (image and not self.image_locked) or (text and not self.text_locked):
            raise XModalError("--lock-image/--lock-text contradict --unlock-* for this model")

    def zero_shot_probs(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Zero-shot label probabilities by the model's own rule: image (D,), labels (L, D), both
        normalised -> (L,). CLIP: softmax over scaled cosines; SigLIP (a logit bias): independent sigmoids."""
        scale = self.logit_scale.detach().float().exp()
        cosines = labels.float() @ image.float()  # (L,)
        if self.logit_bias is not None:
            return torch.sigmoid(scale * cosines + self.logit_bias.detach().float())
        return torch.softmax(scale.clamp(max=100) * cosines, dim=0)  # CLIP caps its scale at 100

    @property
    def has_text_decoder(self) -> bool:
        """True for a model with its own captioning decoder (CoCa), which captions any image."""
        return False

    def generate_captions(
        self, images: list[Image.Image], beam_size: int = 3, max_len: int = 20, k: int = 1
    ) -> list[list[tuple[str, float]]]:
        """Per image the k best captions (text, mean token log-probability); by default the trained
        caption head (training/heads). Models with their own text decoder (CoCa) override this."""
        from training.heads import generate_captions

        return generate_captions(self, images, beam_size=beam_size, max_len=max_len, k=k)

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
        from training.devices import inference_autocast, to_device

        batch = to_device(torch.stack([self.preprocess(im) for im in images]), self.device)
        with inference_autocast(self):
            return self.encode_image(batch, normalize=True).float().cpu()

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Convenience: strings -> (B, D) normalised, on CPU."""
        from training.devices import inference_autocast, to_device

        tokens = {k: to_device(v, self.device) for k, v in self.text_prefix(self.tokenize(texts)).items()}
        with inference_autocast(self):
            return self.encode_text(tokens, normalize=True).float().cpu()


class OpenClipModel(XModalModel):
    """Any open_clip model (CLIP, CustomTextCLIP, CoCa) as built by open_clip's own constructors, with
    its own tokenizer and eval transform. Heads read tokens through open_clip's public
    `forward_intermediates`; a CoCa captions with its own text decoder driven by our beam search."""

    def __init__(self, config: ModelConfig, clip: nn.Module, preprocess, tokenizer):
        super().__init__()
        self.config = config
        self.clip = clip
        self._preprocess = preprocess
        self.tokenizer = tokenizer
        self.embed_dim = config.openclip["embed_dim"]
        size = clip.visual.image_size
        self.image_size = size if isinstance(size, int) else size[0]

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    @property
    def logit_bias(self) -> torch.Tensor | None:
        return getattr(self.clip, "logit_bias", None)

    @property
    def context_length(self) -> int:
        return self.tokenizer.context_length

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(list(texts))}

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = False) -> torch.Tensor:
        """(B, L) token ids -> (B, D); L may be shorter than the context where `text_prefix` cuts."""
        ids = tokens["input_ids"]
        if not self._causal_argmax_text:
            return self.clip.encode_text(ids, normalize=normalize)
        from open_clip.transformer import text_global_pool

        # open_clip's CLIP.encode_text with the positional embedding and causal mask cut to L positions
        clip, n = self.clip, ids.shape[1]
        cast_dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(ids).to(cast_dtype) + clip.positional_embedding[:n].to(cast_dtype)
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:n, :n]))  # (B, L, W)
        x = text_global_pool(x, ids, "argmax")  # (B, W) at each text's end token
        proj = clip.text_projection  # nn.Linear, a (W, D) parameter or None, as CLIP.encode_text reads it
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x, dim=-1) if normalize else x

    def text_prefix(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Up to the batch's last end token (open_clip pads every text to 77 positions; a query is ~10):
        under a causal mask no later position reaches the pooled one, so the vectors are the same."""
        if not self._causal_argmax_text:
            return tokens
        ids = tokens["input_ids"]
        return {"input_ids": ids[:, : int(ids.argmax(-1).max()) + 1]}

    @functools.cached_property
    def _causal_argmax_text(self) -> bool:
        """True for open_clip's CLIP text tower with a causal mask, pooled at the end token (argmax of
        the ids): the towers a prefix gives exactly the same vectors for. Not SigLIP's (no mask, last
        token), CoCa's (a cls token appended after the padding) nor an HF tower (CustomTextCLIP)."""
        from open_clip import CLIP

        clip = self.clip
        if not isinstance(clip, CLIP) or type(clip).encode_text is not CLIP.encode_text:
            return False
        mask = clip.attn_mask  # (ctx, ctx) additive: -inf above the diagonal when causal, else None
        if mask is None or clip.text_pool_type != "argmax":
            return False
        return torch.equal(torch.isinf(mask), torch.ones_like(mask, dtype=torch.bool).triu(1))

    def _intermediates(self, **inputs) -> dict:
        try:
            return self.clip.forward_intermediates(
                **inputs, normalize_intermediates=True, intermediates_only=True, image_output_fmt="NLC"
            )
        except (NotImplementedError, AttributeError, TypeError, AssertionError) as e:
            what = "image" if "image" in inputs else "text"
            raise XModalError(
                f"model {self.config.name!r}: its {what} tower gives no {what} tokens for heads "
                f"(open_clip forward_intermediates: {e or type(e).__name__})"
            ) from None

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The last block's patch tokens after the tower's final norm, prefix tokens excluded: (B, N, C)."""
        return self._intermediates(image=images, image_indices=1)["image_intermediates"][-1]

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last text block's per-token states after the final norm (B, L, W); padding is masked."""
        ids = tokens["input_ids"]
        states = self._intermediates(text=ids, text_indices=1)["text_intermediates"][-1]
        return states, ids != _pad_id(self.tokenizer)

    @functools.cached_property
    def image_token_dim(self) -> int:
        """Channels of image_tokens(), from one tiny forward (they depend on the tower)."""
        p = next(self.clip.parameters())
        with torch.no_grad():
            return self.image_tokens(
                torch.zeros(1, 3, self.image_size, self.image_size, device=p.device)
            ).shape[-1]

    @functools.cached_property
    def text_token_dim(self) -> int:
        p = next(self.clip.parameters())
        with torch.no_grad():
            ids = {k: v.to(p.device) for k, v in self.tokenize(["a"]).items()}
            return self.text_tokens(ids)[0].shape[-1]

    def lock_towers(self, image: bool, text: bool) -> None:
        """open_clip's own LiT locking (lock_image_tower / lock_text_tower, or the tower's lock() where
        the model class has no such method, as CoCa)."""
        if image:
            lock = getattr(self.clip, "lock_image_tower", None) or self.clip.visual.lock
            lock(unlocked_groups=0, freeze_bn_stats=True)
        if text:
            lock = getattr(self.clip, "lock_text_tower", None) or self.clip.text.lock
            lock(unlocked_layers=0, freeze_layer_norm=True)

    @property
    def has_text_decoder(self) -> bool:
        from open_clip import CoCa

        return isinstance(self.clip, CoCa)

    def generate_captions(
        self, images: list[Image.Image], beam_size: int = 3, max_len: int = 20, k: int = 1
    ) -> list[list[tuple[str, float]]]:
        """A CoCa captions with its own multimodal text decoder under training/heads/beam.py (open_clip's
        `generate` needs transformers < 4.56); other open_clip models use the caption head."""
        from open_clip import CoCa

        if not isinstance(self.clip, CoCa) or "caption" in getattr(self, "heads", {}):
            return super().generate_captions(images, beam_size=beam_size, max_len=max_len, k=k)
        return _coca_captions(self, images, beam_size, max_len, k)


def _pad_id(tokenizer) -> int:
    """open_clip's SimpleTokenizer pads with 0; HF tokenizers name their pad id."""
    inner = getattr(tokenizer, "tokenizer", None)
    pad = getattr(inner, "pad_token_id", None)
    return 0 if pad is None else int(pad)


def _special_ids(tokenizer) -> tuple[int, int]:
    """(start, end) token ids a CoCa decoder was trained with: open_clip's <start_of_text>/<end_of_text>,
    or an HF tokenizer's bos/eos (BERT-like: [CLS]/[SEP])."""
    if hasattr(tokenizer, "sot_token_id"):
        return tokenizer.sot_token_id, tokenizer.eot_token_id
    inner = tokenizer.tokenizer
    bos = inner.bos_token_id if inner.bos_token_id is not None else inner.cls_token_id
    eos = inner.eos_token_id if inner.eos_token_id is not None else inner.sep_token_id
    return int(bos), int(eos)


def _decode(tokenizer, ids: list[int]) -> str:
    inner = getattr(tokenizer, "tokenizer", None)
    text = inner.decode(ids, skip_special_tokens=True) if inner is not None else tokenizer.decode(ids)
    return " ".join(text.split())


@torch.inference_mode()
def _coca_captions(model: OpenClipModel, images, beam_size: int, max_len: int, k: int):
    from training.heads.beam import beam_search

    if not images:
        raise XModalError("no images given")
    if not 1 <= k <= beam_size:
        raise XModalError(f"need 1 <= k <= beam_size, got k={k}, beam_size={beam_size}")
    pixels = torch.stack([model.preprocess(im) for im in images]).to(model.device)
    out = model.clip(pixels)  # CoCa without text: {"image_features" (B, D), "image_embs" (B, N, W)}
    latent = out["image_features"].repeat_interleave(beam_size, 0)  # beam j of b at b*K+j
    embs = out["image_embs"].repeat_interleave(beam_size, 0)

    def step(ids: torch.Tensor) -> torch.Tensor:
        logits = model.clip(None, ids, image_latent=latent, image_embs=embs, output_labels=False)["logits"]
        return logits[:, -1].log_softmax(-1)  # (B*K, V)

    bos, eos = _special_ids(model.tokenizer)
    # the decoder's context holds <start> + tokens + <end>
    room = min(max_len, model.context_length - 2)
    hyps = beam_search(
        step, len(images), bos, eos, beam_size, room, k,
        banned=(_pad_id(model.tokenizer), bos), device=pixels.device,
    )  # fmt: skip
    return [[(_decode(model.tokenizer, ids), score) for ids, score in per] for per in hyps]
