"""The trainer on tiny models and a synthetic corpus: learning, checkpoints, resume, flag errors."""

import pytest
import torch
from safetensors.torch import load_file

from tests.training.synthetic import make_corpus
from training.errors import XModalError
from training.factory import load_model, read_card
from training.towers import FAMILIAR_WIDTH
from training.train import main


class Killed(Exception):
    """Stands for the process being killed mid-step."""


@pytest.fixture
def shapes():
    return make_corpus()


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_training_lowers_loss_and_writes_card(shapes, tmp_path):
    out = tmp_path / "m"
    main(["--model", "tiny-lit", "--data", "shapes", "--out", str(out), "--steps", "1", "--batch-size", "12"])
    first = read_card(out)["metrics"]["train_loss"]
    out2 = tmp_path / "m2"
    main(
        [
            "--model",
            "tiny-lit",
            "--data",
            "shapes",
            "--out",
            str(out2),
            "--epochs",
            "30",
            "--batch-size",
            "12",
            "--lr",
            "5e-3",
            "--warmup",
            "2",
        ]
    )
    card = read_card(out2)
    assert card["steps"] == 30 * (48 // 12) and card["data"]["pairs"] == 48
    assert card["metrics"]["train_loss"] < 0.7 * first
    assert card["fingerprint"] == load_model(out2).fingerprint


def test_feature_cache_matches_uncached_training(shapes, tmp_path):
    args = ["--model", "tiny-lit", "--data", "shapes", "--steps", "4", "--batch-size", "12"]
    main([*args, "--out", str(tmp_path / "cached")])
    main([*args, "--out", str(tmp_path / "plain"), "--no-cache"])
    a, b = _weights(tmp_path / "cached"), _weights(tmp_path / "plain")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.parametrize("model", ["tiny-clip", "tiny-lit"])
def test_resume_after_interruption_equals_uninterrupted(shapes, tmp_path, monkeypatch, model):
    args = [
        "--model",
        model,
        "--data",
        "shapes",
        "--steps",
        "6",
        "--save-every",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
    ]
    main([*args, "--out", str(tmp_path / "full")])

    from training.tasks import ContrastiveTask

    calls = {"n": 0}
    real_loss = ContrastiveTask.loss

    def dying_loss(self, m, batch):  # the process "dies" during step 5, after the step-4 checkpoint
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed
        return real_loss(self, m, batch)

    monkeypatch.setattr(ContrastiveTask, "loss", dying_loss)
    with pytest.raises(Killed):
        main([*args, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(ContrastiveTask, "loss", real_loss)
    assert read_card(tmp_path / "cut")["steps"] == 4
    main(["--resume", "--out", str(tmp_path / "cut")])
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_a_run_killed_in_its_heads_stage_resumes_there(shapes, tmp_path, monkeypatch):
    """Every contrastive step was saved before the heads stage began: --resume fits the heads onto
    that model (it refused before: 'nothing to resume'), and once they are there nothing is left."""
    import functools

    from training import config
    from training.heads import fit

    monkeypatch.setitem(config.PRESETS, "tiny-heads", {
        "model": "tiny-lit", "data": ["shapes"], "steps": 2, "batch_size": 8, "fit_heads": True,
    })  # fmt: skip
    small = {"train_images": 20, "caption_images": 20, "vqa_epochs": 1, "caption_epochs": 1}
    recipe = functools.partial(fit.HeadsRecipe, vqa_corpus="shapes", caption_corpora=("shapes",), **small)
    monkeypatch.setattr(fit, "HeadsRecipe", recipe)
    real_fit = fit.fit_default_heads

    def killed(model_dir, recipe=None):
        raise Killed

    out = tmp_path / "m"
    monkeypatch.setattr(fit, "fit_default_heads", killed)
    with pytest.raises(Killed):
        main(["--preset", "tiny-heads", "--out", str(out)])
    encoder = _weights(out)
    assert read_card(out)["steps"] == 2 and "heads" not in read_card(out)
    monkeypatch.setattr(fit, "fit_default_heads", real_fit)
    main(["--resume", "--out", str(out)])
    card, weights = read_card(out), _weights(out)
    assert card["steps"] == 2 and "shapes/test/vqa/accuracy" in card["heads"]
    assert all(torch.equal(weights[k], v) for k, v in encoder.items())  # the encoder is the saved one
    assert any(k.startswith("heads.") for k in weights)
    with pytest.raises(XModalError, match="nothing to resume"):
        main(["--resume", "--out", str(out)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "tiny-lit", "--data", "nope", "--out", "x"], "corpus 'nope' is not prepared"),
        (["--model", "no-such-model", "--data", "shapes", "--out", "x"], "unknown model 'no-such-model'"),
        (["--model", "tiny-lit", "--data", "shapes"], "--out DIR is required"),
        (["--model", "tiny-lit", "--data", "shapes", "--out", "x", "--task", "contrastive"], "NAME=NUMBER"),
        (["--model", "tiny-lit", "--data", "shapes", "--out", "x", "--task", "dance=1"], "unknown task"),
        (["--model", "tiny-lit", "--data", "shapes", "--out", "x", "--batch-size", "0"], "--batch-size"),
        (["--model", "tiny-lit", "--data", "shapes", "--out", "x", "--batch-size", "500"], "exceeds"),
        (["--model", "tiny-lit", "--data", "shapes", "--out", "x", "--limit", "other=3"], "--limit"),
        (["--model", "tiny-clip", "--data", "shapes", "--out", "x", "--unlock-image-blocks", "1"], "LiT"),
        (["--resume", "--out", "nowhere"], "no checkpoint"),
        (["--preset", "fast"], "unknown preset"),
    ],
)
def test_bad_flags_give_clear_errors(shapes, argv, message):
    with pytest.raises(XModalError, match=message.replace("-", r"\-").replace("(", r"\(")):
        main(argv)


def test_weighted_tasks_train_a_vqa_head_beside_the_contrastive_loss(shapes, tmp_path):
    out = tmp_path / "multi"
    main(
        [
            "--model",
            "tiny-lit",
            "--data",
            "shapes",
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "12",
            "--task",
            "contrastive=1",
            "--task",
            "vqa=0.5",
        ]
    )
    card = read_card(out)
    assert card["tasks"] == {"contrastive": 1.0, "vqa": 0.5} and card["data"]["qa"] == 48
    model = load_model(out)
    assert set(model.heads) == {"vqa"} and sorted(model.config.heads["vqa"]["answers"]) == sorted(
        ["blue", "green", "red", "yellow"]
    )


def test_cached_training_fills_the_familiar_bank_from_training_images(shapes, tmp_path, monkeypatch):
    """A LiT model with familiar_bank remembers its training images' tower features (towers.py)."""
    import training.factory
    from training.factory import get_model_config
    from training.features import FeatureStore

    def with_bank(name):
        config = get_model_config(name)
        config.lit = {**config.lit, "bridge_share": 0.4, "familiar_bank": 8}
        return config

    monkeypatch.setattr(training.factory, "get_model_config", with_bank)
    out = tmp_path / "m"
    main(["--model", "tiny-lit", "--data", "shapes", "--out", str(out), "--steps", "1", "--batch-size", "12"])
    model = load_model(out)
    store = FeatureStore(model)
    keyed = {f"shapes/{p.stem}": p for p in sorted((shapes.parent / "media").glob("*.png"))}
    store.prepare_images(keyed)
    train = torch.nn.functional.normalize(store.images(list(keyed)), dim=-1)
    bank = model.familiar.float()
    assert bank.shape == (8, model.image_net.width) and bank.any()
    # every remembered row is one of the training images' features
    assert ((bank @ train.T).max(1).values > 0.999).all()
    lo, hi = model.familiar_range.tolist()
    assert hi - lo == pytest.approx(FAMILIAR_WIDTH)
