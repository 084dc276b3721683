"""open_clip models are saved in open_clip's local-dir format: plain open_clip reloads them exactly."""

import open_clip
import torch
from PIL import Image

from training.factory import load_model


def test_local_dir_checkpoint_loads_in_plain_open_clip(tiny_model_dir):
    ours = load_model(tiny_model_dir)
    clip, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_model_dir}")
    clip.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_model_dir}")
    texts = ["a red circle", "two cats on a mat"]
    g = torch.Generator().manual_seed(0)
    images = [Image.fromarray((torch.rand(48, 40, 3, generator=g) * 255).byte().numpy()) for _ in range(2)]
    with torch.no_grad():
        theirs_img = clip.encode_image(torch.stack([preprocess(im) for im in images]), normalize=True)
        theirs_txt = clip.encode_text(tokenizer(texts), normalize=True)
    assert torch.allclose(ours.embed_images(images), theirs_img, atol=1e-6)
    assert torch.allclose(ours.embed_texts(texts), theirs_txt, atol=1e-6)
