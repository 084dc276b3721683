"""The token-level API heads build on, and the contrastive loss against a brute-force reference."""

import torch
import torch.nn.functional as F

from training.factory import create_model
from training.loss import contrastive_loss


def reference_contrastive_loss(image, text, logit_scale):
    """CLIP's loss written out item by item: -1/2N sum_i [log p(t_i | x_i) + log p(x_i | t_i)]."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        i2t = torch.stack([logit_scale * image[i] @ text[j] for j in range(n)])
        t2i = torch.stack([logit_scale * text[i] @ image[j] for j in range(n)])
        total = total - torch.log_softmax(i2t, 0)[i] - torch.log_softmax(t2i, 0)[i]
    return total / (2 * n)


def test_contrastive_loss_matches_reference():
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    txt = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    got = contrastive_loss(img, txt, torch.tensor(14.3))
    assert torch.allclose(got, reference_contrastive_loss(img, txt, 14.3), atol=1e-5)


def test_openclip_tokens_shapes_and_mask():
    model = create_model("tiny-clip")
    tokens = model.tokenize(["a cow", "a red car on a road"])
    states, mask = model.text_tokens(tokens)
    assert states.shape == (2, 16, model.text_token_dim)
    # start + words + end: the longer caption has more real tokens, padding is masked out
    assert mask.dtype == torch.bool and mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1]
    images = torch.randn(2, 3, model.image_size, model.image_size)
    assert model.image_tokens(images).shape == (2, (32 // 8) ** 2, model.image_token_dim)
