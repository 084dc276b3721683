"""Captioning and VQA heads on the shared image tower.

Heads live in `model.heads` (an nn.ModuleDict), so they are part of the model's state_dict and are
saved and loaded with it; their configs (vocabularies included) live in `model.config.heads`:

    {"vqa": {"answers": [...], "fusion": "early" | "late" | "hybrid", "hidden": 256, ...},   # VQAConfig
     "caption": {"vocab": [...], "layers": 2, "max_len": 20, ...}}                          # CaptionConfig

Inference API (the service calls these; user errors are XModalError subclasses):

    answer_questions(model, images (B,3,H,W) or list[PIL.Image], questions: list[str], k=3)
        -> list[list[(answer, prob)]]          one question per image; EmptyQuestionError for ""
    generate_captions(model, images, beam_size=3, max_len=20, k=1)
        -> list[list[(caption, score)]]        beam search; score = mean token log-probability;
                                               max_len is capped at the head's config.max_len
    retrieve_captions(model, images, bank_texts: list[str], bank_emb: Tensor | None = None, k=5)
        -> list[list[(caption, score)]]        nearest bank captions by cosine similarity

A model without the needed head raises MissingHeadError. Training: training/heads/tasks.py
(CaptionTask, VQATask for the trainer); metrics: training/heads/evaluate.py.
"""

from torch import nn

from training.errors import XModalError
from training.heads.caption import CaptionConfig, CaptionHead, build_vocab
from training.heads.inference import (
    EmptyQuestionError,
    MissingHeadError,
    answer_questions,
    generate_captions,
    get_head,
    retrieve_captions,
)
from training.heads.vqa import VQAConfig, VQAHead

__all__ = [
    "CaptionConfig",
    "EmptyQuestionError",
    "MissingHeadError",
    "VQAConfig",
    "answer_questions",
    "attach_heads",
    "build_vocab",
    "generate_captions",
    "get_head",
    "retrieve_captions",
]


def attach_heads(model: nn.Module, heads_cfg: dict[str, dict]) -> nn.Module:
    """Builds the heads `heads_cfg` describes into `model.heads` and records their full configs in
    `model.config.heads`, so save_model writes them and load_model rebuilds the same heads.
    Replaces a head of the same name; returns the model."""
    if not hasattr(model, "heads"):
        model.heads = nn.ModuleDict()
    for name, cfg in heads_cfg.items():
        try:
            if name == "vqa":
                config = VQAConfig(**cfg)
                head = VQAHead(config, model.image_token_dim, model.text_token_dim)
            elif name == "caption":
                config = CaptionConfig(**cfg)
                head = CaptionHead(config, model.image_token_dim)
            else:
                raise XModalError(f"unknown head {name!r}; expected vqa or caption")
        except TypeError as e:  # unknown or missing keys in a hand-written config
            raise XModalError(f"{name} head config: {e}") from None
        model.heads[name] = head.to(next(model.parameters()).device)
        model.config.heads = {**model.config.heads, name: config.to_dict()}
    return model
