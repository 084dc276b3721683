"""The LiT dual encoder (tiny towers, no downloads): API shapes, locking, bridge at init, save/load."""

import pytest
import torch
from PIL import Image

from training.factory import create_model, load_model, save_model
from training.towers import FAMILIAR_WIDTH


def _images(n=3):
    g = torch.Generator().manual_seed(3)
    return [Image.fromarray((torch.rand(40, 50, 3, generator=g) * 255).byte().numpy()) for _ in range(n)]


def test_tiny_lit_api_and_split_encoders():
    model = create_model("tiny-lit")
    batch = torch.stack([model.preprocess(im) for im in _images()])
    assert batch.shape == (3, 3, 32, 32)
    img = model.encode_image(batch, normalize=True)
    assert img.shape == (3, model.embed_dim)
    assert torch.allclose(img, model.image_head(model.image_tower(batch), normalize=True))
    tokens = model.tokenize(["a cat", "two dogs on a boat"])
    assert torch.allclose(model.encode_text(tokens), model.text_head(model.text_tower(tokens)))
    states, mask = model.text_tokens(tokens)
    assert states.shape[:2] == mask.shape and states.shape[2] == model.text_token_dim
    assert model.image_tokens(batch).shape == (3, (32 // 4) ** 2, model.image_token_dim)


def test_towers_locked_heads_trainable():
    model = create_model("tiny-lit")
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"text_proj", "image_proj", "bridge_proj", "bridge_log_temp", "logit_scale"}
    assert model.image_locked and model.text_locked


def test_bridge_at_init_is_class_prompt_embedding():
    """Untrained, an image embeds as the probability-weighted mean of its class prompts' text embeddings."""
    model = create_model("tiny-lit")
    batch = torch.stack([model.preprocess(im) for im in _images()])
    pooled = model.image_tower(batch)
    probs = model.image_net.logits(pooled).softmax(-1)
    prompts = model.text_tower(model.tokenize([f"a photo of a {c}." for c in model.image_net.classes]))
    expected = probs @ torch.nn.functional.normalize(prompts, dim=-1)
    assert torch.allclose(model.encode_image(batch), expected, atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    model = create_model("tiny-lit")
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    ims = _images()
    assert torch.equal(model.embed_images(ims), again.embed_images(ims))
    assert torch.equal(model.embed_texts(["a red boat"]), again.embed_texts(["a red boat"]))


def test_efficientnet_runs_cpu_batches_in_chunks_with_the_same_result():
    """The real EfficientNet-Lite0 architecture (random weights, small input): a batch of 9 is run in
    chunks of CPU_CHUNK on CPU, and gives what one pass over the whole batch gives."""
    from training.towers import CPU_CHUNK, EffNetLite0

    net = EffNetLite0(pretrained=False).eval()
    x = torch.randn(2 * CPU_CHUNK + 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    calls = []
    original = net.net.extract_features
    net.net.extract_features = lambda t: calls.append(len(t)) or original(t)
    with torch.no_grad():
        chunked = net.feature_map(x)
        whole = original(x.contiguous(memory_format=torch.channels_last))
    assert calls == [CPU_CHUNK, CPU_CHUNK, 1]
    assert chunked.shape == whole.shape == (9, 1280, 2, 2)
    assert torch.allclose(chunked, whole, atol=1e-4)


def _tiny_lit(**lit):
    from training.factory import build_model, get_model_config

    config = get_model_config("tiny-lit")
    config.lit = {**config.lit, **lit}
    return build_model(config)


def test_bridge_share_scores_are_a_fixed_mix_of_trained_and_bridge_cosines():
    """With bridge_share s, cos(image, text) = (1 - s) * cos of the trained parts + s * cos of the untrained
    bridge parts, however the trained projections have moved."""
    import torch.nn.functional as F

    model = _tiny_lit(bridge_share=0.3)
    with torch.no_grad():
        for p in (model.image_proj.weight, model.text_proj.weight):  # as if trained
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    batch = torch.stack([model.preprocess(im) for im in _images()])
    tokens = model.tokenize(["a cat", "two dogs on a boat"])
    img, txt = model.encode_image(batch), model.encode_text(tokens)
    assert img.shape[1] == txt.shape[1] == model.embed_dim == model.cfg.embed_dim + model.text_net.width
    assert torch.allclose(img.norm(dim=1), torch.ones(3)) and torch.allclose(txt.norm(dim=1), torch.ones(2))

    pooled, text_features = model.image_tower(batch), model.text_tower(tokens)
    probs = (model.image_net.logits(pooled) / model.bridge_log_temp.exp()).softmax(-1)
    bridged = probs @ model.class_text
    trained_img = F.normalize(model.image_proj(pooled) + model.bridge_proj(bridged), dim=-1)
    trained_txt = F.normalize(model.text_proj(text_features), dim=-1)
    expected = (
        0.7 * trained_txt @ trained_img.T
        + 0.3 * F.normalize(text_features, dim=-1) @ F.normalize(bridged, dim=-1).T
    )
    assert torch.allclose(txt @ img.T, expected, atol=1e-5)


def test_a_centred_bridge_takes_the_mean_class_text_out_of_the_fixed_part_only():
    """centre_bridge: the untrained part is probs @ (class_text - its mean), so an image that spreads its
    probability evenly has no direction there (it looked like the mean class: ImageNet's dogs); the
    trained part still starts from the plain bridge."""
    import torch.nn.functional as F

    plain = _tiny_lit(bridge_share=0.3)
    centred = _tiny_lit(bridge_share=0.3, centre_bridge=True)
    centred.load_state_dict(plain.state_dict())
    batch = torch.stack([plain.preprocess(im) for im in _images()])
    pooled = plain.image_tower(batch)
    d = plain.cfg.embed_dim
    with torch.no_grad():
        a, b = plain.image_head(pooled), centred.image_head(pooled)
        probs = (plain.image_net.logits(pooled) / plain.bridge_log_temp.exp()).softmax(-1)
        want = F.normalize(probs @ (plain.class_text - plain.class_text.mean(0)), dim=-1) * 0.3**0.5
        assert torch.allclose(a[:, :d], b[:, :d])  # the trained part is the same
        assert torch.allclose(b[:, d:], want, atol=1e-6)
        assert not torch.allclose(a[:, d:], b[:, d:], atol=1e-3)
        even = torch.full((1, len(plain.image_net.classes)), 1 / len(plain.image_net.classes))
        assert (even @ (plain.class_text - plain.class_text.mean(0))).abs().max() < 1e-6
    with pytest.raises(ValueError, match="centre_bridge"):
        _tiny_lit(centre_bridge=True)


@pytest.mark.parametrize(
    "lit", [{"bridge_share": 1.0}, {"bridge_share": -0.1}, {"bridge_share": 0.5, "bridge": False}]
)
def test_bad_bridge_share_is_refused(lit):
    with pytest.raises(ValueError, match="bridge_share"):
        _tiny_lit(**lit)


def test_class_glosses_bridge_text_is_the_mean_of_name_synonyms_and_gloss():
    """With class_glosses each class's bridge row is the normalised sum of three unit vectors: its name
    prompt, the mean of its synonym prompts, and "a NAME: GLOSS" (WordNet's "lemma, lemma: gloss")."""
    import torch.nn.functional as F

    model = _tiny_lit(class_glosses=True)
    model.image_net.glosses[1] = "dog, domestic dog: a member of the genus Canis"
    model.text_net.eval()

    def emb(prompts):
        return F.normalize(model.text_tower(model.tokenize(prompts)), dim=-1)

    with torch.no_grad():
        expected = F.normalize(
            emb(["a photo of a dog."])[0]
            + F.normalize(emb(["a photo of a dog.", "a photo of a domestic dog."]).mean(0), dim=0)
            + emb(["a dog: a member of the genus Canis"])[0],
            dim=0,
        )
        rows = model._class_text(pretrained=True)
    assert torch.allclose(rows[1], expected, atol=1e-5)
    assert not torch.allclose(rows[1], emb(["a photo of a dog."])[0], atol=1e-3)


def test_familiar_images_keep_bridge_share_and_strange_ones_move_to_unfamiliar_share():
    """Per image share s_i from familiarity: cos(text, image) = sqrt((1 - t)(1 - s_i)) cos(trained parts)
    + sqrt(t s_i) cos(bridge parts), t = bridge_share for every text."""
    import torch.nn.functional as F

    model = _tiny_lit(bridge_share=0.3, familiar_bank=6, unfamiliar_share=0.9).eval()
    with torch.no_grad():
        model.image_proj.weight.add_(torch.randn(model.image_proj.weight.shape) * 0.5)  # as if trained
    g = torch.Generator().manual_seed(0)
    domain = torch.randn(1, model.image_net.width, generator=g)
    train = domain + 0.05 * torch.randn(40, model.image_net.width, generator=g)  # one tight training domain
    model.remember_training_images(train)
    lo, hi = model.familiar_range.tolist()
    assert hi - lo == pytest.approx(FAMILIAR_WIDTH) and 0.9 < hi <= 1.0
    strange = torch.randn(2, model.image_net.width, generator=g)
    feats = torch.cat([domain, strange, domain + 0.3 * strange[:1]])
    shares = model._image_share(feats).squeeze(1)
    assert shares[0].item() == pytest.approx(0.3)  # as familiar as training images
    assert shares[1:3].tolist() == pytest.approx([0.9, 0.9])  # unlike any of them
    between = ((hi - model.familiarity(feats[3:])) / (hi - lo)).clamp(0, 1).item()
    assert shares[3].item() == pytest.approx(0.3 + 0.6 * between)

    tokens = model.tokenize(["a cat", "two dogs on a boat"])
    text_features = model.text_tower(tokens)
    img, txt = model.image_head(feats), model.text_head(text_features)
    assert torch.allclose(img.norm(dim=1), torch.ones(4), atol=1e-5)
    probs = (model.image_net.logits(feats) / model.bridge_log_temp.exp()).softmax(-1)
    bridged = probs @ model.class_text
    trained_img = F.normalize(model.image_proj(feats) + model.bridge_proj(bridged), dim=-1)
    trained_txt = F.normalize(model.text_proj(text_features), dim=-1)
    s = shares[None, :]
    expected = ((0.7 * (1 - s)) ** 0.5) * (trained_txt @ trained_img.T) + ((0.3 * s) ** 0.5) * (
        F.normalize(text_features, dim=-1) @ F.normalize(bridged, dim=-1).T
    )
    assert torch.allclose(txt @ img.T, expected, atol=1e-5)


def test_an_empty_familiar_bank_means_one_fixed_share(tmp_path):
    model = _tiny_lit(bridge_share=0.3, familiar_bank=6)
    assert model._image_share(torch.randn(3, model.image_net.width)) == 0.3
    model.remember_training_images(torch.randn(20, model.image_net.width))
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert torch.equal(again.familiar, model.familiar) and torch.equal(
        again.familiar_range, model.familiar_range
    )
