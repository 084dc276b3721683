"""Inference with the heads, for the service and `xmodal eval` (documented in training/heads/__init__.py).

Each function runs in three stages (STYLE 7): check inputs, one batched forward under
torch.inference_mode, then plain-Python results. `images` is a (B, 3, H, W) tensor already
preprocessed, or a list of PIL images. Call them on a model in eval mode (load_model does so).
"""

import torch
from PIL import Image

from training.errors import XModalError
from training.heads.beam import beam_search
from training.heads.caption import BOS, EOS, PAD, UNK, CaptionHead
from training.heads.vqa import VQAHead
from training.model import XModalModel


class MissingHeadError(XModalError):
    """The model was saved without the head a request needs (e.g. VQA on a plain dual encoder)."""


class EmptyQuestionError(XModalError):
    """A VQA question that is empty or only whitespace."""


def get_head(model: XModalModel, name: str) -> torch.nn.Module:
    """model.heads[name], or MissingHeadError naming the heads the model does have."""
    heads = getattr(model, "heads", None)
    if heads is None or name not in heads:
        have = ", ".join(heads) if heads else "none"
        raise MissingHeadError(
            f"model {model.config.name!r} has no {name} head (heads: {have}); train one first"
        )
    return heads[name]


def _pixels(model: XModalModel, images: torch.Tensor | list[Image.Image]) -> torch.Tensor:
    """A (B, 3, H, W) batch on the model's device; PIL images go through model.preprocess."""
    if isinstance(images, list | tuple):
        if not images:
            raise XModalError("no images given")
        images = torch.stack([model.preprocess(im) for im in images])
    if images.ndim != 4 or images.shape[1] != 3:
        raise XModalError(f"images must be a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
    return images.to(model.device)


@torch.inference_mode()
def answer_questions(
    model: XModalModel, images: torch.Tensor, questions: list[str], k: int = 3
) -> list[list[tuple[str, float]]]:
    """One question per image -> per image the k most probable answers (answer, probability), best first."""
    head: VQAHead = get_head(model, "vqa")
    images = _pixels(model, images)
    if len(questions) != images.shape[0]:
        raise XModalError(f"got {images.shape[0]} images but {len(questions)} questions; pass one per image")
    for i, q in enumerate(questions):
        if not q or not q.strip():
            raise EmptyQuestionError(f"question {i} is empty; ask something about the image")
    if k < 1:
        raise XModalError(f"k must be at least 1, got {k}")
    dev = model.device
    tokens = {n: v.to(dev) for n, v in model.tokenize([q.strip() for q in questions]).items()}
    q_tokens, q_mask = model.text_tokens(tokens)
    logits = head(model.image_tokens(images), q_tokens, q_mask)
    return head.top_answers(logits, k)


@torch.inference_mode()
def generate_captions(
    model: XModalModel, images: torch.Tensor, beam_size: int = 3, max_len: int = 20, k: int = 1
) -> list[list[tuple[str, float]]]:
    """Beam-search captions -> per image the k best (caption, mean token log-probability), best first.
    `max_len` (words) is capped at the head's trained maximum; `k` may not exceed `beam_size`."""
    head: CaptionHead = get_head(model, "caption")
    images = _pixels(model, images)
    if max_len < 1:
        raise XModalError(f"max_len must be at least 1, got {max_len}")
    if not 1 <= k <= beam_size:
        raise XModalError(f"need 1 <= k <= beam_size, got k={k}, beam_size={beam_size}")
    return beam_captions(head, model.image_tokens(images), beam_size, max_len, k)


@torch.inference_mode()
def beam_captions(
    head: CaptionHead, image_tokens: torch.Tensor, beam_size: int, max_len: int, k: int
) -> list[list[tuple[str, float]]]:
    """generate_captions on precomputed image tokens (B, N, Ci); evaluation passes cached ones."""
    memory = head.memory(image_tokens).repeat_interleave(
        beam_size, dim=0
    )  # (B*K, M, W): beam j of b at b*K+j

    def step(ids: torch.Tensor) -> torch.Tensor:
        return head(memory, ids)[:, -1].log_softmax(-1)

    idx = head.word_index
    hyps = beam_search(
        # positions past the trained length do not exist: cap max_len
        step, image_tokens.shape[0], idx[BOS], idx[EOS], beam_size, min(max_len, head.config.max_len), k,
        banned=(idx[PAD], idx[BOS], idx[UNK]), device=image_tokens.device,
    )  # fmt: skip
    return [[(head.decode(ids), score) for ids, score in per_image] for per_image in hyps]


@torch.inference_mode()
def retrieve_captions(
    model: XModalModel,
    images: torch.Tensor,
    bank_texts: list[str],
    bank_emb: torch.Tensor | None = None,
    k: int = 5,
) -> list[list[tuple[str, float]]]:
    """Retrieval captioning: per image the k nearest distinct captions of the bank by the dual encoder's
    cosine similarity. Pass `bank_emb` ((len(bank_texts), D), normalised) to reuse embeddings."""
    images = _pixels(model, images)
    if not bank_texts:
        raise XModalError("the caption bank is empty")
    if bank_emb is None:
        bank_emb = model.embed_texts(bank_texts)
    if bank_emb.shape[0] != len(bank_texts):
        raise XModalError(f"bank_emb has {bank_emb.shape[0]} rows but there are {len(bank_texts)} bank texts")
    img = model.encode_image(images, normalize=True).float().cpu()
    sims = img @ bank_emb.float().T  # (B, bank)
    out = []
    for row in sims:
        picked, seen = [], set()
        for j in row.argsort(
            descending=True
        ).tolist():  # skip repeats: banks often hold one caption many times
            if bank_texts[j] not in seen:
                seen.add(bank_texts[j])
                picked.append((bank_texts[j], float(row[j])))
                if len(picked) == k:
                    break
        out.append(picked)
    return out
