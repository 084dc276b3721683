"""The LiT dual encoder (tiny towers, no downloads): API shapes, locking, bridge at init, save/load."""

import torch
from PIL import Image

from training.factory import create_model, load_model, save_model


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
