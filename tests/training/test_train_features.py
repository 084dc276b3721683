"""The frozen-tower feature cache: reused across runs, keyed by tower weights and input size."""

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
