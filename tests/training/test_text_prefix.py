"""Text towers run on the batch's real prefix where that is exact (open_clip's CLIP: causal mask,
pooled at the end token), checked against open_clip's own encode_text on all context positions;
towers where a prefix would change the vectors are left uncut."""

import pytest
import torch

from app.graphs import _GRAPHS, text_encoder
from training.factory import create_model, load_model

LONG = " ".join(["a long caption that runs past the context"] * 4)  # more than tiny-clip's 16 positions
BATCHES = [["x"], ["a red circle"], [LONG], ["x", "two cats on a mat by the door", "a red circle"],
           ["a red circle", LONG, "x"]]  # fmt: skip


@pytest.fixture(scope="module")
def clip_model():
    torch.manual_seed(0)
    return create_model("tiny-clip", pretrained=False)


def real_length(ids: torch.Tensor) -> int:
    """Positions up to and including the longest text's end token (open_clip pads with 0)."""
    return int((ids != 0).sum(-1).max())


@pytest.mark.parametrize("texts", BATCHES, ids=["1 token", "3 tokens", "truncated", "mixed", "mixed+long"])
def test_prefix_gives_open_clips_own_vectors(clip_model, texts):
    tokens = clip_model.tokenize(texts)
    cut = clip_model.text_prefix(tokens)["input_ids"]
    assert cut.shape[1] == real_length(tokens["input_ids"])
    assert torch.equal(cut, tokens["input_ids"][:, : cut.shape[1]])
    with torch.no_grad():
        theirs = clip_model.clip.encode_text(tokens["input_ids"], normalize=True)  # all 16 positions
        assert torch.allclose(clip_model.encode_text({"input_ids": cut}, normalize=True), theirs, atol=1e-6)
        # uncut tokens take the same path (training calls it so)
        assert torch.allclose(clip_model.encode_text(tokens, normalize=True), theirs, atol=1e-6)


def test_served_graph_cuts_every_batch_to_its_own_length(clip_model):
    """The traced encoder the service runs takes any prefix length, not the one it was traced on."""
    encode = text_encoder(clip_model)
    assert _GRAPHS[clip_model] is not None  # traced, not the eager fallback
    for texts in BATCHES:
        tokens = clip_model.tokenize(texts)
        with torch.no_grad():
            theirs = clip_model.clip.encode_text(tokens["input_ids"], normalize=True)
            assert torch.allclose(encode(tokens), theirs, atol=1e-6)


def test_transformers_clip_is_cut_to_its_longest_text(hub_offline):
    """transformers' CLIP text tower (causal, end-token pooled): the cut batch gives the vectors its own
    get_text_features gives at max_length padding."""
    model = load_model(hub_offline["refs"]["transformers clip"])
    for texts in BATCHES:
        tokens = model.tokenize(texts)
        cut = model.text_prefix(tokens)
        assert cut["input_ids"].shape[1] == int(tokens["attention_mask"].sum(-1).max())
        with torch.no_grad():
            theirs = torch.nn.functional.normalize(model.hf.get_text_features(**tokens).pooler_output, dim=-1)
            assert torch.allclose(model.encode_text(cut, normalize=True), theirs, atol=1e-6)


@pytest.mark.parametrize(
    "form", ["hf-hub siglip", "local-dir coca", "bare dir hftext", "transformers siglip"]
)
def test_towers_a_prefix_would_change_are_not_cut(hub_offline, form):
    """SigLIP (no causal mask, last-token pooling), CoCa (a cls token after the padding) and an HF tower
    read every position: their tokens stay as the tokenizer made them."""
    model = load_model(hub_offline["refs"][form])
    tokens = model.tokenize(["a red circle", "x"])
    assert model.text_prefix(tokens) is tokens
    with torch.no_grad():
        served = model.embed_texts(["a red circle", "x"])
        assert torch.allclose(served, model.encode_text(tokens, normalize=True), atol=1e-6)


def test_positions_after_the_end_reach_only_uncut_towers(hub_offline, clip_model):
    """Why the cut is exact for CLIP and the guard is needed: other ids after the end token leave a causal
    end-token-pooled vector as it was, and move the SigLIP-style tower's (no mask, last position)."""
    siglip = load_model(hub_offline["refs"]["hf-hub siglip"])
    for model, moves in ((clip_model, False), (siglip, True)):
        ids = model.tokenize(["a red circle"])["input_ids"]
        noisy = ids.clone()
        noisy[:, real_length(ids) :] = torch.randint(1000, 2000, (1, ids.shape[1] - real_length(ids)))
        with torch.no_grad():
            full, other = (model.clip.encode_text(x, normalize=True) for x in (ids, noisy))
        assert torch.allclose(full, other, atol=1e-6) is not moves
