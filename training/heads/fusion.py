"""Fusion of image and question features for VQA, one module per mode (selected by VQAConfig.fusion).

All three take features already projected to a common width H:

    pooled (B, H)           the mean image token      question (B, L, H)  question tokens
    spatial (B, N, H)|None  the image tokens (only    q_mask (B, L)       bool, True = real token
                            modes with `spatial = True` get them; projecting them costs most)

and return answer logits (B, A).

    early   pooled image and pooled question, concatenated (with their product), then an MLP
    late    an image-only and a question-only classifier; their logits are added
    hybrid  question tokens cross-attend over the image tokens, then pooled, combined with the pooled
            image like early fusion, and classified
"""

import torch
from torch import nn

FUSION_MODES = ("early", "late", "hybrid")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: x (B, L, H), mask (B, L) bool -> (B, H)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(d_in), nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out)
    )


class EarlyFusion(nn.Module):
    spatial = False

    def __init__(self, hidden: int, n_answers: int, dropout: float):
        super().__init__()
        # the product term lets a small MLP express "this colour AND this question" directly
        self.classify = mlp(3 * hidden, 2 * hidden, n_answers, dropout)

    def forward(self, pooled, spatial, question: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        v, q = pooled, masked_mean(question, q_mask)  # (B, H) each
        return self.classify(torch.cat([v, q, v * q], dim=-1))


class LateFusion(nn.Module):
    spatial = False

    def __init__(self, hidden: int, n_answers: int, dropout: float):
        super().__init__()
        self.image_head = mlp(hidden, 2 * hidden, n_answers, dropout)
        self.question_head = mlp(hidden, 2 * hidden, n_answers, dropout)

    def forward(self, pooled, spatial, question: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        # adding logits multiplies the two heads' (unnormalised) probabilities: a product of experts
        return self.image_head(pooled) + self.question_head(masked_mean(question, q_mask))


class HybridFusion(nn.Module):
    spatial = True

    def __init__(self, hidden: int, n_answers: int, dropout: float, heads: int, layers: int):
        super().__init__()
        # a decoder layer without a causal mask: self-attention over the question, cross-attention
        # from each question token over all image tokens
        layer = nn.TransformerDecoderLayer(
            hidden, heads, 2 * hidden, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.attend = nn.TransformerDecoder(layer, layers)
        self.classify = mlp(3 * hidden, 2 * hidden, n_answers, dropout)

    def forward(self, pooled, spatial, question: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        memory = torch.cat([pooled.unsqueeze(1), spatial], dim=1)  # (B, 1 + N, H)
        attended = masked_mean(self.attend(question, memory, tgt_key_padding_mask=~q_mask), q_mask)  # (B, H)
        # as in early fusion, the product lets yes-no questions compare what was asked with what is seen
        return self.classify(torch.cat([attended, pooled, attended * pooled], dim=-1))


def build_fusion(
    mode: str, hidden: int, n_answers: int, dropout: float, heads: int, layers: int
) -> nn.Module:
    """The fusion module for `mode`; the caller has validated `mode` against FUSION_MODES."""
    if mode == "early":
        return EarlyFusion(hidden, n_answers, dropout)
    if mode == "late":
        return LateFusion(hidden, n_answers, dropout)
    return HybridFusion(hidden, n_answers, dropout, heads, layers)
