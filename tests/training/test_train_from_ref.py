"""`xmodal train --model REF` continues from REF's weights (heads kept), with open_clip's LiT locking."""

import pytest
import torch
from safetensors.torch import load_file

from tests.training.synthetic import make_corpus
from training.errors import XModalError
from training.factory import create_model, load_model, save_model
from training.heads import attach_heads
from training.heads.caption import SPECIALS
from training.train import main


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _train(ref, out, *extra):
    main(["--model", ref, "--data", "shapes", "--out", str(out), "--steps", "2", "--batch-size", "12",
          "--lr", "1e-2", "--warmup", "0", *extra])  # fmt: skip
    return load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize(("form", "frozen", "trained"), [
    ("hf-hub vit", "--lock-image", ("clip.visual.", "clip.transformer.")),
    ("transformers clip", "--lock-text", ("hf.text_model.", "hf.vision_model.")),
])  # fmt: skip
def test_train_continues_from_a_reference_with_a_locked_tower(hub_offline, tmp_path, form, frozen, trained):
    make_corpus()
    ref = hub_offline["refs"][form]
    before = _state(load_model(ref))
    after = _train(ref, tmp_path / "m", frozen)
    locked, free = trained
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith(locked))
    moved = [k for k in after if k.startswith(free) and not torch.equal(after[k], before[k])]
    assert moved, f"nothing under {free} trained"
    assert load_model(tmp_path / "m").fingerprint  # an ordinary saved model dir


def test_train_from_a_saved_dir_keeps_its_heads(tmp_path):
    make_corpus()
    model = create_model("tiny-clip")
    attach_heads(model, {"caption": {"vocab": [*SPECIALS, "red", "square"], "width": 16, "attn_heads": 2}})
    save_model(model, tmp_path / "base")
    before = _state(model)
    after = _train(str(tmp_path / "base"), tmp_path / "m")
    assert "caption" in load_model(tmp_path / "m").heads
    heads = [k for k in after if k.startswith("heads.")]
    assert heads and all(torch.equal(after[k], before[k]) for k in heads)  # contrastive only: heads untouched
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("clip."))


def test_lock_flags_and_unknown_references_are_clear(hub_offline, tmp_path):
    make_corpus()
    with pytest.raises(XModalError, match="--unlock-\\* applies to LiT models"):
        _train(hub_offline["refs"]["hf-hub vit"], tmp_path / "m", "--unlock-image-blocks", "1")
    with pytest.raises(XModalError, match="weights file .* not found"):
        _train(f"openclip:tiny-vit@{tmp_path}/none.safetensors", tmp_path / "m")


def test_eval_takes_a_reference_and_prints_without_a_card(hub_offline, capsys):
    """`xmodal eval --model hf-hub:...`: same metrics as for a saved dir; nothing to write a card into."""
    from training.eval_cli import main as eval_main
    from training.evaluate import evaluate_model

    make_corpus()
    ref = hub_offline["refs"]["hf-hub siglip"]
    eval_main(["--model", ref, "--retrieval", "shapes", "--classify", "shapes", "--device", "cpu"])
    printed = capsys.readouterr().out
    want = evaluate_model(load_model(ref), {}, "shapes", "shapes", None)["shapes/test"]
    assert f"t2i_R@10={want['t2i_R@10']:.4f}" in printed
