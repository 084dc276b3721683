"""The served text encoder: a traced graph that matches the model, an eager fallback when it cannot,
and no reference that keeps a retired model alive."""

import gc
import logging
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from app.graphs import _GRAPHS, text_encoder
from training.factory import create_model

TEXTS = ["a dog", "a red bicycle leaning on a wall in the rain", "", "two cats and a very small mouse"]


@pytest.mark.parametrize("name", ["tiny-lit", "tiny-clip"])
def test_traced_encoder_matches_the_model_on_padded_batches(name):
    model = create_model(name).eval()
    encode = text_encoder(model)
    assert _GRAPHS[model] is not None  # traced, not the eager fallback
    for texts in (TEXTS, TEXTS[:1], TEXTS[1:] * 5):
        tokens = model.tokenize(texts)
        with torch.inference_mode():
            assert torch.allclose(encode(tokens), model.encode_text(tokens, normalize=True), atol=1e-5)


class _ShapeBranch(nn.Module):
    """encode_text branches in Python on the batch size, which a trace bakes in as a constant."""

    device = torch.device("cpu")

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def tokenize(self, texts):
        return {"input_ids": torch.tensor([[len(t) % 7 + 1.0] * 4 for t in texts])}

    def text_prefix(self, tokens):
        return tokens

    def encode_text(self, tokens, normalize=False):
        x = self.proj(tokens["input_ids"])
        x = -x if x.shape[0] > 2 else x
        return F.normalize(x, dim=-1) if normalize else x


def test_a_model_that_does_not_trace_the_same_is_served_eagerly(caplog):
    model = _ShapeBranch()
    with caplog.at_level(logging.WARNING, logger="xmodal.app"):
        encode = text_encoder(model)
    assert _GRAPHS[model] is None
    assert "served eagerly" in caplog.text and "differs from the model" in caplog.text
    tokens = model.tokenize(["a", "bb", "ccc"])
    assert torch.equal(encode(tokens), model.encode_text(tokens, normalize=True))


def test_a_retired_model_is_freed():
    model = create_model("tiny-lit").eval()
    text_encoder(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # the graph holds no reference to the model object
