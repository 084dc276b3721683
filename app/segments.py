"""Video answers from image answers: every sampled frame goes through one per-image solver, frames vote
per segment, repeated adjacent segments merge, and segments vote (by duration) for the whole video.

    solve_video(sample.segments, solver) -> VideoAnswer
        segments  [(start_s, end_s, [PIL frames]), ...] as training.video.sample_video gives them
        solver    frames -> [(text, confidence in [0, 1], method)], one per frame, in order

The solver is injected so that any image captioner or question answerer serves video unchanged.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

Solved = tuple[str, float, str]  # (text, confidence in [0, 1], method that produced it)
Solver = Callable[[list[Image.Image]], list[Solved]]


@dataclass
class SegmentAnswer:
    start: float  # seconds
    end: float
    text: str
    confidence: float  # the winning text's share of the segment's frame confidence, in [0, 1]
    method: str


@dataclass
class VideoAnswer:
    ranked: list[tuple[str, float]]  # every segment text with its duration-weighted confidence, best first
    method: str  # of the best text's most confident segment
    segments: list[SegmentAnswer]  # merged: no two neighbours share a text

    @property
    def text(self) -> str:
        return self.ranked[0][0]


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def vote(solved: Sequence[Solved]) -> tuple[str, float, str]:
    """The text with the largest summed confidence: (text, that sum / len(solved), its best method).
    Ties go to the text seen first."""
    totals: dict[str, float] = {}
    first: dict[str, Solved] = {}
    for s in solved:
        k = _key(s[0])
        totals[k] = totals.get(k, 0.0) + max(0.0, s[1])
        if k not in first or s[1] > first[k][1]:
            first[k] = s
    best = max(totals, key=totals.__getitem__)  # max keeps the first of equal totals
    return first[best][0], totals[best] / len(solved), first[best][2]


def merge_repeats(segments: list[SegmentAnswer]) -> list[SegmentAnswer]:
    """Adjacent segments with the same text become one spanning both; confidence weighted by duration."""
    out: list[SegmentAnswer] = []
    for s in segments:
        prev = out[-1] if out else None
        if prev is not None and _key(prev.text) == _key(s.text):
            a, b = prev.end - prev.start, s.end - s.start
            conf = (prev.confidence * a + s.confidence * b) / (a + b) if a + b > 0 else prev.confidence
            out[-1] = SegmentAnswer(prev.start, s.end, prev.text, conf, prev.method)
        else:
            out.append(s)
    return out


def solve_video(segments: list[tuple[float, float, list[Image.Image]]], solver: Solver) -> VideoAnswer:
    """Per-segment answers by frame vote, merged, and the whole video's ranking by duration-weighted vote.
    All frames go to `solver` in one call (one batched forward)."""
    frames = [f for _, _, fs in segments for f in fs]
    if not frames:
        raise ValueError("no frames to answer about")
    solved = solver(frames)
    assert len(solved) == len(frames), f"solver answered {len(solved)} of {len(frames)} frames"
    per_segment, i = [], 0
    for start, end, fs in segments:
        text, conf, method = vote(solved[i : i + len(fs)])
        per_segment.append(SegmentAnswer(start, end, text, conf, method))
        i += len(fs)
    merged = merge_repeats(per_segment)
    total = sum(s.end - s.start for s in merged) or 1.0
    weights: dict[str, float] = {}
    text_of: dict[str, SegmentAnswer] = {}
    for s in merged:  # a zero-length video (one frame) still counts its one segment
        k = _key(s.text)
        weights[k] = weights.get(k, 0.0) + s.confidence * max(s.end - s.start, 1e-9) / total
        if k not in text_of or s.confidence > text_of[k].confidence:
            text_of[k] = s
    order = sorted(weights, key=lambda k: -weights[k])  # stable: ties keep first appearance
    return VideoAnswer(
        ranked=[(text_of[k].text, weights[k]) for k in order],
        method=text_of[order[0]].method,
        segments=merged,
    )
