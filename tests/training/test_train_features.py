"""The frozen-tower feature cache: reused across runs, keyed by tower weights and input size."""

import pytest
import torch

from tests.training.synthetic import COLORS, draw
from training.factory import build_model, create_model, get_model_config
from training.features import FeatureStore
from training.tasks import Pair


def _pairs():
    return [Pair(f"shapes/{c}", draw("circle", rgb), [f"a {c} circle"]) for c, rgb in COLORS.items()]


def test_second_store_reads_the_cache_instead_of_recomputing(monkeypatch):
    model = create_model("tiny-lit")
    first = FeatureStore(model)
    first.prepare(_pairs())
    calls = []
    monkeypatch.setattr(type(model), "image_tower", lambda self, x: calls.append(x) or None)
    again = FeatureStore(model)
    again.prepare(_pairs())
    assert calls == []
    keys = [p.key for p in _pairs()]
    assert torch.equal(first.images(keys), again.images(keys))
    assert torch.equal(first.texts(["a red circle"]), again.texts(["a red circle"]))


def test_cache_key_changes_with_weights_and_image_size():
    model = create_model("tiny-lit")
    digest = model.tower_digest("image")
    config = get_model_config("tiny-lit")
    config.lit = {**config.lit, "image_size": 48}
    torch.manual_seed(0)
    assert build_model(config).tower_digest("image") != digest
    with torch.no_grad():
        model.image_net.fc.bias.add_(1.0)
    assert model.tower_digest("image") != digest


def test_tokens_are_cached_on_disk_beside_pooled_features(monkeypatch):
    """Image tokens and question tokens (rows of different lengths) come back from a second store as
    stored, in float16, with the padding mask of their real lengths, without running a tower."""
    model = create_model("tiny-lit")
    keyed = {p.key: p.image for p in _pairs()}
    questions = ["what colour is it?", "is it a circle?", "what shape is the red thing on the left?"]
    first = FeatureStore(model)
    first.prepare_images(keyed, tokens=True)
    first.prepare_texts(questions, tokens=True)
    for tower in ("image_tokens", "text_tokens"):
        monkeypatch.setattr(type(model), tower, lambda self, x: pytest.fail("recomputed"))
    again = FeatureStore(model)
    again.prepare_images(keyed, tokens=True)
    again.prepare_texts(questions, tokens=True)
    monkeypatch.undo()
    keys = list(keyed)
    tokens = again.image_tokens(keys, [keyed[k] for k in keys])
    assert torch.equal(tokens, first.image_tokens(keys, [keyed[k] for k in keys]))
    with torch.no_grad():
        live = model.image_tokens(torch.stack([model.preprocess(keyed[k]) for k in keys]))
    torch.testing.assert_close(tokens, live.half().float())
    x, mask = again.text_tokens(questions)
    with torch.no_grad():
        live_x, live_mask = model.text_tokens(model.tokenize(questions))
    assert torch.equal(mask, live_mask.bool()) and mask.sum(1).unique().numel() > 1
    torch.testing.assert_close(x[mask], live_x[live_mask.bool()].half().float())
