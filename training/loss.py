"""Symmetric InfoNCE (CLIP's loss) via open_clip's ClipLoss, all-gathering features across DDP ranks."""

import torch
import torch.distributed as dist
from open_clip.loss import ClipLoss

_losses: dict[tuple[int, int], ClipLoss] = {}


def _clip_loss() -> ClipLoss:
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if (rank, world) not in _losses:
        # local_loss + gather_with_grad: each rank scores its own rows against every rank's columns and
        # gradients flow through the gather, so the DDP-averaged gradient equals the single-process one.
        _losses[rank, world] = ClipLoss(
            local_loss=world > 1, gather_with_grad=world > 1, rank=rank, world_size=world
        )
    return _losses[rank, world]


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy over the global batch (all ranks).

    image, text: (B_local, D) normalised embeddings, row i of each is a positive pair.
    logit_scale: the temperature's inverse, already exponentiated.
    Under DDP the returned value covers this rank's rows; the mean over ranks is the global loss.
    """
    return _clip_loss()(image, text, logit_scale)
