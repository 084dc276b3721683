"""The VQA head: image tokens and question tokens in, logits over a closed answer vocabulary out.

The vocabulary lives in the config (saved in the model's config.json), so an answer outside it cannot
be produced: the head only ever scores the listed answers.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import XModalError
from training.heads.fusion import FUSION_MODES, build_fusion


@dataclass
class VQAConfig:
    answers: list[str]  # the answer vocabulary; logits index into it
    fusion: str = "early"  # "early", "late" or "hybrid" (training/heads/fusion.py)
    hidden: int = 256  # common width the image and question tokens are projected to
    dropout: float = 0.1
    attn_heads: int = 4  # hybrid only: attention heads of the cross-attention layers
    attn_layers: int = 1  # hybrid only: number of cross-attention layers

    def __post_init__(self):
        if self.fusion not in FUSION_MODES:
            raise XModalError(
                f"vqa head: unknown fusion {self.fusion!r}; expected one of {', '.join(FUSION_MODES)}"
            )
        if not self.answers or len(set(self.answers)) != len(self.answers):
            raise XModalError("vqa head: 'answers' must be a non-empty list of distinct answers")
        if self.hidden % self.attn_heads:
            raise XModalError(
                f"vqa head: hidden ({self.hidden}) must be divisible by attn_heads ({self.attn_heads})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class VQAHead(nn.Module):
    """Projects both modalities to `hidden`, fuses them, classifies over `config.answers`."""

    def __init__(self, config: VQAConfig, image_dim: int, text_dim: int):
        super().__init__()
        self.config = config
        self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, config.hidden))
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, config.hidden))
        self.fusion = build_fusion(
            config.fusion,
            config.hidden,
            len(config.answers),
            config.dropout,
            config.attn_heads,
            config.attn_layers,
        )
        self.answer_index = {a: i for i, a in enumerate(config.answers)}

    def forward(
        self, image_tokens: torch.Tensor, q_tokens: torch.Tensor, q_mask: torch.Tensor
    ) -> torch.Tensor:
        """image_tokens (B, N, Ci), q_tokens (B, L, Ct), q_mask (B, L) bool -> logits (B, A)."""
        pooled = self.image_proj(image_tokens.mean(1))  # (B, H)
        spatial = self.image_proj(image_tokens) if self.fusion.spatial else None  # (B, N, H)
        return self.fusion(pooled, spatial, self.text_proj(q_tokens), q_mask)

    def loss(self, logits: torch.Tensor, answers: list[str]) -> torch.Tensor:
        return F.cross_entropy(logits, self.answer_targets(answers, logits.device))

    def answer_targets(self, answers: list[str], device: torch.device) -> torch.Tensor:
        """Answer strings -> (B,) indices; an answer outside the vocabulary is a user error."""
        unknown = sorted({a for a in answers if a not in self.answer_index})
        if unknown:
            raise XModalError(f"vqa head: answers {unknown[:5]} are not in the head's vocabulary")
        return torch.tensor([self.answer_index[a] for a in answers], device=device)

    def top_answers(self, logits: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        """(B, A) logits -> per row the k most probable answers with their probabilities."""
        probs = logits.float().softmax(-1)
        p, idx = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            [(self.config.answers[i], float(v)) for i, v in zip(row_i.tolist(), row_p.tolist(), strict=True)]
            for row_i, row_p in zip(idx, p, strict=True)
        ]
