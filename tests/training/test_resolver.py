"""The one model-reference resolver: every form loads with the model's own weights, tokenizer and
preprocessing (checked against open_clip / transformers used directly), a stable fingerprint, import
and show, and one clear line for a bad reference."""

import json
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tests.byo_models import PREPROCESS, SIGLIP_REPO
from training.errors import XModalError
from training.factory import load_model

TEXTS = ["a red circle", "Two CATS, on a mat!", "x"]
OPEN_CLIP_FORMS = [
    "local-dir vit", "bare dir hftext", "local-dir coca", "file vit .bin", "file coca", "file hftext .pt",
    "hf-hub vit", "hf-hub siglip", "hf-hub coca",
]  # fmt: skip


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 48, 3), dtype=np.uint8)) for i in range(n)]


def open_clip_name(ref: str) -> tuple[str, str | None]:
    """How plain open_clip names the same model: (model_name, pretrained)."""
    if ref.startswith("openclip:"):
        arch, _, weights = ref[len("openclip:") :].partition("@")
        return arch, weights
    if ref.startswith(("hf-hub:", "local-dir:")):
        return ref, None
    return f"local-dir:{ref}", None


@pytest.mark.parametrize("form", OPEN_CLIP_FORMS)
def test_open_clip_forms_match_open_clip_itself(hub_offline, form):
    ref = hub_offline["refs"][form]
    ours = load_model(ref)
    name, pretrained = open_clip_name(ref)
    clip, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    tokenizer = open_clip.get_tokenizer(name)
    clip.eval()
    ims = images()
    with torch.no_grad():
        theirs_img = clip.encode_image(torch.stack([preprocess(im) for im in ims]), normalize=True)
        theirs_txt = clip.encode_text(tokenizer(TEXTS), normalize=True)
    assert torch.equal(ours.tokenize(TEXTS)["input_ids"], tokenizer(TEXTS))
    assert torch.allclose(ours.embed_images(ims), theirs_img, atol=1e-5)
    assert torch.allclose(ours.embed_texts(TEXTS), theirs_txt, atol=1e-5)
    assert type(ours.clip) is type(clip) and ours.fingerprint


def test_openclip_tag_loads_from_the_hf_cache_offline(hub_offline, monkeypatch):
    """`openclip:ARCH@TAG` downloads through open_clip's pretrained table into the HF cache; offline, the
    cached copy serves. The tiny architecture gets a tag in that table (real tags are real-size models)."""
    from open_clip import pretrained

    cfg = pretrained._pcfg(hf_hub="org/tiny-vit/", **PREPROCESS)
    monkeypatch.setitem(pretrained._PRETRAINED, "tiny-vit", {"tinytag": cfg})
    ours = load_model("openclip:tiny-vit@tinytag")
    direct = load_model(hub_offline["refs"]["hf-hub vit"])
    assert ours.fingerprint == direct.fingerprint  # same weights and preprocessing, by another form
    assert torch.allclose(ours.embed_images(images()), direct.embed_images(images()), atol=1e-6)
    with pytest.raises(XModalError, match="tinytag-missing"):
        load_model("openclip:tiny-vit@tinytag-missing")


def test_open_clip_classes_come_from_open_clip(byo_layouts):
    kinds = {
        f: type(load_model(byo_layouts["refs"][f]).clip).__name__
        for f in ("local-dir vit", "bare dir hftext", "local-dir coca")
    }
    assert kinds == {"local-dir vit": "CLIP", "bare dir hftext": "CustomTextCLIP", "local-dir coca": "CoCa"}


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_transformers_dirs_match_transformers_itself(byo_layouts, kind):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    path = byo_layouts["refs"][f"transformers {kind}"]
    ours = load_model(path)
    hf, tok, proc = (c.from_pretrained(path) for c in (AutoModel, AutoTokenizer, AutoImageProcessor))
    hf.eval()
    ims = images()
    t = tok(TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        img = hf.get_image_features(pixel_values=proc(images=ims, return_tensors="pt")["pixel_values"])
        txt = hf.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
    assert torch.equal(ours.tokenize(TEXTS)["input_ids"], t["input_ids"])
    assert torch.allclose(
        ours.embed_images(ims), torch.nn.functional.normalize(img.pooler_output, dim=-1), atol=1e-5
    )
    assert torch.allclose(
        ours.embed_texts(TEXTS), torch.nn.functional.normalize(txt.pooler_output, dim=-1), atol=1e-5
    )
    assert (ours.logit_bias is not None) == (kind == "siglip")


def test_token_ids_are_each_models_own(hub_offline):
    vit = load_model(hub_offline["refs"]["local-dir vit"])
    siglip = load_model(hub_offline["refs"]["hf-hub siglip"])
    # ViT: open_clip's BPE tokenizer at the model's context length
    assert torch.equal(
        vit.tokenize(TEXTS)["input_ids"], open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS)
    )
    # SigLIP: the HF tokenizer its config names, with its own cleaning (canonicalize drops punctuation)
    theirs = open_clip.tokenizer.HFTokenizer(SIGLIP_REPO, context_length=16, clean="canonicalize")
    assert torch.equal(siglip.tokenize(TEXTS)["input_ids"], theirs(TEXTS))
    assert not torch.equal(siglip.tokenize(TEXTS)["input_ids"], vit.tokenize(TEXTS)["input_ids"])


def test_preprocessing_follows_the_pretrained_config(byo_layouts):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    model = load_model(byo_layouts["refs"]["local-dir vit"])
    im = images(1)[0]
    want = image_transform_v2(PreprocessCfg(size=32, **PREPROCESS), is_train=False)(im)
    default = image_transform_v2(PreprocessCfg(size=32), is_train=False)(im)
    assert torch.equal(model.preprocess(im), want) and not torch.allclose(want, default)
    assert model.config.openclip_preprocess["resize_mode"] == "squash"


def test_zero_shot_rule_is_the_models_own(hub_offline):
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0)
    labels = torch.nn.functional.normalize(torch.randn(4, 32, generator=g), dim=-1)
    vit = load_model(hub_offline["refs"]["local-dir vit"])
    siglip = load_model(hub_offline["refs"]["hf-hub siglip"])
    p = vit.zero_shot_probs(image, labels)
    assert (
        torch.allclose(p, torch.softmax(vit.clip.logit_scale.exp() * labels @ image, 0))
        and abs(p.sum() - 1) < 1e-5
    )
    q = siglip.zero_shot_probs(image, labels)
    want = torch.sigmoid(siglip.clip.logit_scale.exp() * labels @ image + siglip.clip.logit_bias)
    assert torch.allclose(q, want.detach()) and q.sum() < 0.5  # bias -10: independent, small


def test_fingerprint_is_the_same_in_another_process(hub_offline):
    """hf-hub in a fresh process (HF_HUB_CACHE + HF_HUB_OFFLINE from the environment alone) and the same
    snapshot as a local dir here: same config and weights, same fingerprint."""
    here = load_model(hub_offline["refs"]["local-dir vit"]).fingerprint
    code = (
        "import open_clip, sys; from training.factory import load_model; "
        "print(load_model(sys.argv[1]).fingerprint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "hf-hub:org/tiny-vit"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == here
    other = load_model(hub_offline["refs"]["local-dir coca"]).fingerprint
    assert other != here


def test_bad_references_get_one_clear_line(hub_offline, tmp_path):
    snaps = hub_offline["snapshots"]
    no_weights = tmp_path / "config-only"
    no_weights.mkdir()
    (no_weights / "open_clip_config.json").write_text((snaps["vit"] / "open_clip_config.json").read_text())
    cases = {
        f"openclip:tiny-vit@{tmp_path}/missing.safetensors": "weights file .* not found",
        f"local-dir:{no_weights}": "open_clip_config.json but no weights",
        str(no_weights): "open_clip_config.json but no weights",
        f"openclip:tiny-vit@{snaps['coca']}/open_clip_model.safetensors": "weights do not fit",
        f"local-dir:{tmp_path}/nowhere": "not found",
        "hf-hub:org/not-cached": "no open_clip weights in the Hugging Face cache",
        "openclip:no-such-arch@x.safetensors": "weights file",
        str(tmp_path): "holds none of config.json",
        "no-such-model": "unknown model 'no-such-model'",
    }
    for ref, message in cases.items():
        with pytest.raises(XModalError, match=message) as e:
            load_model(ref)
        assert "\n" not in str(e.value) and len(str(e.value)) < 600, str(e.value)


def test_bad_reference_on_the_cli_is_one_line_and_exit_2(byo_layouts, tmp_path, capsys):
    from app.cli import main

    with pytest.raises(SystemExit) as e:
        main(["model", "show", f"openclip:tiny-vit@{tmp_path}/x.pt"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: model ") and len(err.splitlines()) == 1, err


def test_model_show_and_import(hub_offline, tmp_path, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("XMODAL_HOME", str(tmp_path / "home"))
    ref = f"hf-hub:{SIGLIP_REPO}"
    main(["model", "show", ref, "--json"])
    shown = json.loads(capsys.readouterr().out)
    original = load_model(ref)
    assert (
        shown["architecture"] == "CLIP"
        and shown["embed_dim"] == 32
        and shown["fingerprint"] == original.fingerprint
    )
    assert shown["similarity"].startswith("sigmoid") and shown["preprocess"]["resize_mode"] == "squash"
    assert shown["context_length"] == 16 and "BertTokenizer" in shown["tokenizer"]
    main(["model", "import", ref, "--name", "sig"])
    saved = tmp_path / "home" / "models" / "sig"
    assert {"config.json", "model.safetensors", "card.json", "open_clip_config.json"} <= {
        p.name for p in saved.iterdir()
    }
    again = load_model("sig")  # by id under XMODAL_HOME/models
    ims = images()
    assert torch.equal(again.tokenize(TEXTS)["input_ids"], original.tokenize(TEXTS)["input_ids"])
    assert torch.allclose(again.embed_images(ims), original.embed_images(ims), atol=1e-6)
    assert json.loads((saved / "card.json").read_text())["source"] == ref
    with pytest.raises(SystemExit) as e:  # the CLI prints the one line and exits 2
        main(["model", "import", ref, "--name", "sig"])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err


def test_transformers_import_round_trips(byo_layouts, tmp_path, monkeypatch):
    from app.cli import main

    monkeypatch.setenv("XMODAL_HOME", str(tmp_path / "home"))
    ref = byo_layouts["refs"]["transformers siglip"]
    main(["model", "import", ref, "--name", "hfsig"])
    again, original = load_model("hfsig"), load_model(ref)
    assert torch.allclose(again.embed_texts(TEXTS), original.embed_texts(TEXTS), atol=1e-6)
    assert again.logit_bias is not None


def test_heads_need_image_tokens_and_say_so(byo_layouts):
    from training.heads import attach_heads
    from training.heads.caption import SPECIALS

    model = load_model(byo_layouts["refs"]["bare dir hftext"])
    attach_heads(
        model, {"caption": {"vocab": [*SPECIALS, "cat"], "width": 16, "attn_heads": 2}}
    )  # image tokens: fine
    assert model.image_tokens(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 32)
    with pytest.raises(XModalError, match="text tower gives no text tokens"):
        attach_heads(model, {"vqa": {"answers": ["yes", "no"]}})
