"""The decode and embed stages: chunks of records decoded in DataLoader workers, embedded in batches.

A chunk is `batch_size` consecutive records; it is the unit of prefetching, embedding and resuming
(one shard file per chunk, written by index/runner.py). Rows come out in record order: an image is
one row; a video is a whole-video row followed by one row per segment.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from index.readers import Record
from index.store import Row
from training.video import VideoConfig, sample_video


@dataclass
class DecodedVideo:
    pos: int  # position in the chunk
    frames: torch.Tensor  # (T, 3, H, W) uniform over the video
    segment_frames: torch.Tensor  # (S, F, 3, H, W)
    bounds: list[tuple[float, float]]  # S x (start, end) seconds


@dataclass
class DecodedChunk:
    chunk: int
    image_pos: list[int] = field(default_factory=list)  # positions of decoded images in the chunk
    images: torch.Tensor | None = None  # (Bi, 3, H, W)
    videos: list[DecodedVideo] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (position, reason)
    decode_s: float = 0.0  # worker time spent reading and decoding


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]


class ChunkDataset(torch.utils.data.Dataset):
    """Decodes whole chunks (map-style, one chunk per index) so DataLoader workers prefetch them."""

    def __init__(
        self, records: list[Record], chunk_ids: list[int], chunk_size: int, preprocess, video: VideoConfig
    ):
        self.records, self.chunk_ids, self.chunk_size = records, chunk_ids, chunk_size
        self.preprocess, self.video = preprocess, video

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def chunk_records(self, chunk: int) -> list[Record]:
        return self.records[chunk * self.chunk_size : (chunk + 1) * self.chunk_size]

    def __getitem__(self, i: int) -> DecodedChunk:
        t0 = time.perf_counter()
        out = DecodedChunk(self.chunk_ids[i])
        images = []
        for pos, rec in enumerate(self.chunk_records(out.chunk)):
            if rec.refused:
                out.failures.append((pos, rec.refused))
                continue
            try:  # any failure to read or decode one file skips that file, never the job
                if rec.media == "video":
                    out.videos.append(self._video(pos, rec))
                else:
                    with Image.open(rec.path) as im:
                        images.append(self.preprocess(im.convert("RGB")))
                    out.image_pos.append(pos)
            except Exception as e:
                out.failures.append((pos, _reason(e)))
        if images:
            out.images = torch.stack(images)
        out.decode_s = time.perf_counter() - t0
        return out

    def _video(self, pos: int, rec: Record) -> DecodedVideo:
        return decode_video(rec.path, self.preprocess, self.video, pos)


def decode_video(path: str, preprocess, cfg: VideoConfig, pos: int = 0) -> DecodedVideo:
    """A video's sampled frames, preprocessed: the decode stage of the index job (the service embeds
    an uploaded clip through this too, so a clip and the indexed video it came from match)."""
    sample = sample_video(path, cfg)
    frames = torch.stack([preprocess(f.convert("RGB")) for f in sample.frames])
    segs = torch.stack(
        [torch.stack([preprocess(f.convert("RGB")) for f in fs]) for _, _, fs in sample.segments]
    )
    return DecodedVideo(pos, frames, segs, [(s, e) for s, e, _ in sample.segments])


@torch.inference_mode()
def embed_video(model, video: DecodedVideo) -> tuple[np.ndarray, np.ndarray]:
    """The whole-video vector (D,) and the segment vectors (S, D), float32, L2-normalised."""
    device = model.device
    whole = model.encode_video(video.frames[None].to(device), normalize=True).float().cpu().numpy()[0]
    segs = model.encode_video(video.segment_frames.to(device), normalize=True).float().cpu().numpy()
    return whole, segs


def collate_chunk(x: DecodedChunk) -> DecodedChunk:
    """Identity collate: a dataset item is already a whole batch (DataLoader batch_size=None)."""
    return x


@torch.inference_mode()
def embed_chunk(model, decoded: DecodedChunk, records: list[Record]) -> tuple[np.ndarray, list[Row]]:
    """Vectors (R, D) float32, L2-normalised, and their rows, in record order (failures left out)."""
    device = model.device
    per_pos: dict[int, list[tuple[np.ndarray, Row]]] = {}
    if decoded.images is not None:
        vecs = (
            model.encode_image(decoded.images.to(device, non_blocking=True), normalize=True)
            .float()
            .cpu()
            .numpy()
        )
        for pos, v in zip(decoded.image_pos, vecs, strict=True):
            r = records[pos]
            per_pos[pos] = [(v, Row(r.item_id, "image", r.path, r.captions, meta=r.meta))]
    for dv in decoded.videos:
        r = records[dv.pos]
        whole, segs = embed_video(model, dv)
        per_pos[dv.pos] = [(whole, Row(r.item_id, "video", r.path, r.captions, meta=r.meta))] + [
            (v, Row(r.item_id, "video", r.path, r.captions, round(s, 3), round(e, 3), r.meta))
            for v, (s, e) in zip(segs, dv.bounds, strict=True)
        ]
    pairs = [p for pos in sorted(per_pos) for p in per_pos[pos]]
    dim = model.embed_dim
    vectors = np.stack([v for v, _ in pairs]).astype(np.float32) if pairs else np.zeros((0, dim), np.float32)
    return vectors, [row for _, row in pairs]
