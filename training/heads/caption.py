"""The caption head: a small transformer decoder over a word vocabulary, conditioned on image tokens.

Words are lower-cased alphanumeric runs (`words()`); the vocabulary is built from training captions
(`build_vocab`) and stored in the config, so a saved model rebuilds the same head.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import XModalError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]  # indices 0..3 in every vocabulary
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Caption text -> lower-case words, punctuation dropped ("A red Circle." -> ["a", "red", "circle"])."""
    return _WORD.findall(text.lower())


def build_vocab(captions: Iterable[str], min_count: int = 1, max_size: int = 10_000) -> list[str]:
    """Specials, then words seen at least `min_count` times, most frequent first (ties alphabetical)."""
    counts = Counter(w for c in captions for w in words(c))
    ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return SPECIALS + ranked[: max_size - len(SPECIALS)]


@dataclass
class CaptionConfig:
    vocab: list[str]  # SPECIALS then words (build_vocab)
    width: int = 256  # decoder width
    layers: int = 2
    attn_heads: int = 4
    max_len: int = 20  # longest caption in words, without <bos>/<eos>
    dropout: float = 0.1

    def __post_init__(self):
        if self.vocab[: len(SPECIALS)] != SPECIALS or len(self.vocab) <= len(SPECIALS):
            raise XModalError(
                f"caption head: 'vocab' must start with {SPECIALS} and hold words (use build_vocab)"
            )
        if self.width % self.attn_heads:
            raise XModalError(
                f"caption head: width ({self.width}) must be divisible by attn_heads ({self.attn_heads})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class CaptionHead(nn.Module):
    """Pre-norm transformer decoder; memory = projected image tokens with their mean prepended."""

    def __init__(self, config: CaptionConfig, image_dim: int):
        super().__init__()
        self.config = config
        w = config.width
        self.word_index = {t: i for i, t in enumerate(config.vocab)}
        self.memory_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, w))
        self.embed = nn.Embedding(len(config.vocab), w, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(config.max_len + 2, w))  # <bos> + words + <eos>
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerDecoderLayer(
            w, config.attn_heads, 4 * w, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, config.layers)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, len(config.vocab))

    def memory(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, Ci) -> (B, N + 1, W): the pooled token gives every step a global summary."""
        m = self.memory_proj(image_tokens)
        return torch.cat([m.mean(1, keepdim=True), m], dim=1)

    def forward(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """memory (B, M, W) from `memory()`, ids (B, T) starting with <bos> -> logits (B, T, V).

        Causal: position t sees ids[:, :t+1] only; padding (id 0) is masked as keys."""
        t = ids.shape[1]
        x = self.embed(ids) + self.pos[:t]
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).triu(1)  # True = may not attend
        h = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, tgt_key_padding_mask=ids == 0)
        return self.out(self.norm(h))

    def encode(self, captions: list[str]) -> torch.Tensor:
        """Captions -> (B, T) ids: <bos> words <eos>, cut to max_len words, right-padded with 0."""
        rows = [
            [self.word_index[BOS]]
            + [self.word_index.get(w, self.word_index[UNK]) for w in words(c)[: self.config.max_len]]
            + [self.word_index[EOS]]
            for c in captions
        ]
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Word ids (no <bos>) -> text, stopping at <eos>; specials are dropped."""
        out = []
        for i in ids:
            if i == self.word_index[EOS]:
                break
            if i >= len(SPECIALS):
                out.append(self.config.vocab[i])
        return " ".join(out)

    def loss(self, image_tokens: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Teacher forcing: predict ids[:, 1:] from ids[:, :-1]; padding is ignored."""
        ids = self.encode(captions).to(image_tokens.device)
        logits = self(self.memory(image_tokens), ids[:, :-1])  # (B, T-1, V)
        return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), ignore_index=0)
