"""Video in: search by a clip, and captions and answers for a video, per segment.

    POST /v1/search/video          multipart `video` -> similar videos with their best moments (or images)
    POST /v1/search/video-to-text  multipart `video` -> the best captions of the caption bank
    POST /v1/caption, /v1/vqa      with a `video` file, or `index` + `id` of an indexed video: generate.py
                                   hands such requests to caption_video / answer_video below

A clip is sampled and embedded by the index job's own functions (index.embed.decode_video/embed_video)
with the searched index's video settings, so a clip cut from an indexed video lands on that video's
moment. Captions and answers come from a per-image solver run on every sampled frame, aggregated by
app/segments.py. Uploads are checked (bytes, container, video stream, frames, duration) by demuxing
alone, before a frame is decoded.
"""

import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Annotated, Literal

import torch
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.config import Settings, VideoLimitSettings
from app.deps import EncodersDep, ServingDep, SettingsDep, caption_method, check_k, check_text, form_body
from app.limits import video_body
from app.media import BadInputError
from app.registry import NotFoundError, ServingState
from app.routes.search import (
    CaptionsK,
    IndexForm,
    TextsForm,
    candidate_texts,
    captions_response,
    search_vector,
)
from app.schemas import Answer, CaptionsResponse, ScoredText, SearchResponse
from app.segments import Solver, VideoAnswer, solve_video
from training.errors import XModalError
from training.video import VideoConfig

router = APIRouter(prefix="/v1", tags=["video"])

ACCEPTED = "mp4, webm, avi, mov, mkv"
# PyAV (libavformat) demuxer names that hold those containers: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
_DEMUXERS = {"mov", "mp4", "matroska", "webm", "avi"}


class Segment(BaseModel):
    start: float = Field(description="seconds")
    end: float
    text: str = Field(description="the segment's caption or answer")
    confidence: float = Field(description="share of the segment's frame votes, in [0, 1]")
    method: str = Field(description="the solver that produced it")


class VideoCaptionResponse(BaseModel):
    mode: str
    captions: list[ScoredText] = Field(description="video-level captions, by duration-weighted vote")
    duration: float
    segments: list[Segment] = Field(description="per segment, repeated neighbours merged")


class VideoVqaResponse(BaseModel):
    question: str
    answers: list[Answer] = Field(description="video-level answers, by duration-weighted vote")
    duration: float
    segments: list[Segment]


# -- the per-image solvers -------------------------------------------------------------------------
# Each builds a Solver: frames -> [(text, confidence in [0, 1], method)] per frame, from the image
# solvers of /v1/caption and /v1/vqa (training/understand.py), so a segment is answered as a photo is.


def _confidence(r) -> float:
    """A Result's score in [0, 1]: decoder scores are mean token log-probabilities, the others
    probabilities or cosines."""
    return math.exp(r.score) if r.method == "decoder" else min(1.0, max(0.0, r.score))


def _frame_features(state: ServingState, frames):
    from training.understand import image_features

    return image_features(state.model, torch.stack([state.model.preprocess(f) for f in frames]))


def caption_solver(state: ServingState, mode: str, index: str | None) -> Solver:
    """mode "generate" (the model's captioner), "retrieve" (the caption bank), or "auto": as
    /v1/caption's auto mode (decoder for its domains, bank above its threshold, else a concept)."""
    from training.heads import retrieve_captions
    from training.understand import Calibration, caption_image

    if mode == "retrieve":
        texts, bank = state.caption_bank(index)
        # cosine in [-1, 1] -> [0, 1]
        return lambda frames: [
            (t, (1 + s) / 2, "retrieve")
            for ((t, s),) in retrieve_captions(state.model, frames, texts, bank, k=1)
        ]
    if mode == "generate":  # mean token log-probability -> per-token probability
        return lambda frames: [
            (t, math.exp(s), "decoder")
            for ((t, s),) in state.model.generate_captions(frames, beam_size=3, max_len=30, k=1)
        ]
    cal = Calibration.from_card(state.card)
    texts, bank = state.caption_bank(index) if index or state.default_index else ([], None)

    def solve(frames):
        out = []
        for frame, f in zip(frames, _frame_features(state, frames), strict=True):
            near = []
            if bank is not None and len(texts):
                top = (bank.float() @ f.embedding).topk(min(5, len(texts)))
                near = [
                    (texts[i], float(c))
                    for c, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                ]
            r = caption_image(state.model, f, cal, near, 1, frame)[0]
            out.append((r.text, _confidence(r), r.method))
        return out

    return solve


def vqa_solver(state: ServingState, question: str) -> Solver:
    """As /v1/vqa: routed by question type (kind, colour, yes/no), or the easy-vqa head for its domain."""
    from training.understand import Calibration, answer_question

    cal = Calibration.from_card(state.card)

    def solve(frames):
        feats = _frame_features(state, frames)
        found = [
            answer_question(state.model, f, im, question, cal, 1)[0]
            for f, im in zip(feats, frames, strict=True)
        ]
        return [(r.text, _confidence(r), r.method) for r in found]

    return solve


# -- uploads: read, check, sample ------------------------------------------------------------------


def _first_line(e: Exception) -> str:
    """The reason, without the server-side file name PyAV appends to its errors."""
    text = getattr(e, "strerror", None) or str(e)
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]


def probe_video(path: Path, limits: VideoLimitSettings, field: str = "video") -> float:
    """Checks an uploaded file by demuxing only (no decoding); returns its duration in seconds.
    Raises BadInputError naming the problem: unreadable, container, no video, no frames, limits."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise BadInputError(
            f"{field}: not a readable video ({_first_line(e)}); send {ACCEPTED}", 422
        ) from None
    with container:
        if not set(container.format.name.split(",")) & _DEMUXERS:
            raise BadInputError(
                f"{field}: container {container.format.name!r} is not accepted; accepted: {ACCEPTED}", 415
            )
        if not container.streams.video:
            what = "only audio" if container.streams.audio else "no streams: an empty video"
            raise BadInputError(f"{field}: the file has no video stream ({what})", 422)
        stream = container.streams.video[0]
        if stream.duration and stream.time_base and stream.duration * stream.time_base > limits.max_seconds:
            raise BadInputError(_too_long(field, float(stream.duration * stream.time_base), limits), 413)
        step = 1 / float(stream.average_rate) if stream.average_rate else 0.0  # one frame's duration
        frames, first, last = 0, None, None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                frames += 1
                if frames > limits.max_frames:
                    raise BadInputError(
                        f"{field}: more than {limits.max_frames} frames; the limit is "
                        f"{limits.max_frames} frames (XMODAL_VIDEO__MAX_FRAMES)",
                        413,
                    )
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is not None:
                    t = float(ts * stream.time_base)
                    first = t if first is None else min(first, t)
                    last = t if last is None else max(last, t)
        except av.error.FFmpegError as e:
            raise BadInputError(f"{field}: corrupt video data ({_first_line(e)})", 422) from None
    if frames == 0:
        raise BadInputError(f"{field}: zero-length video: the video stream holds no frames", 422)
    duration = (last - first + step) if first is not None else 0.0
    if duration > limits.max_seconds:
        raise BadInputError(_too_long(field, duration, limits), 413)
    return duration


def _too_long(field: str, seconds: float, limits: VideoLimitSettings) -> str:
    return (
        f"{field}: {seconds:.1f} s is over the duration limit of {limits.max_seconds:g} s "
        "(XMODAL_VIDEO__MAX_SECONDS)"
    )


@contextlib.asynccontextmanager
async def uploaded_video(upload: UploadFile, limits: VideoLimitSettings) -> AsyncIterator[Path]:
    """The upload copied to a temporary file (PyAV reads paths), removed afterwards; 413 over max_bytes."""
    with tempfile.TemporaryDirectory(prefix="xmodal-video-") as tmp:
        path = Path(tmp) / "upload"
        size = 0
        with open(path, "wb") as f:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise BadInputError(
                        f"video: over the upload limit of {limits.max_bytes} bytes (XMODAL_VIDEO__MAX_BYTES)",
                        413,
                    )
                f.write(chunk)
        if size == 0:
            raise BadInputError(f"video: empty upload; send a video file ({ACCEPTED})", 422)
        yield path


def video_config(state: ServingState, index: str | None) -> VideoConfig:
    """The video settings the index job used for `index` (default: the default index); VideoConfig()
    when no index is loaded or it predates recorded settings."""
    name = index or state.default_index
    idx = state.indexes.get(name) if name else None
    if index and idx is None:
        state.index(index)  # 404 naming the loaded indexes
    recorded = (idx.manifest.get("video") if idx is not None else None) or {}
    known = {f.name for f in dataclass_fields(VideoConfig)}
    return VideoConfig(**{k: v for k, v in recorded.items() if k in known})


def _sample(path: Path, cfg: VideoConfig, limits: VideoLimitSettings | None):
    """training.video.sample_video after probe_video (uploads only); decode failures become 422."""
    import av

    from training.video import sample_video

    if limits is not None:
        probe_video(path, limits)
    try:
        return sample_video(path, cfg)
    except (av.error.FFmpegError, ValueError) as e:
        raise BadInputError(f"video: corrupt video data ({_first_line(e)})", 422) from None


# The video inputs as multipart fields (`video` also on /v1/caption and /v1/vqa, with `id` instead)
VideoUpload = Annotated[
    UploadFile,
    File(
        description=f"the clip: {ACCEPTED}; at most XMODAL_VIDEO__MAX_BYTES bytes (default 32 MiB), "
        "XMODAL_VIDEO__MAX_SECONDS seconds and XMODAL_VIDEO__MAX_FRAMES frames"
    ),
]
OptionalVideo = Annotated[
    UploadFile | None, File(description=f"a video ({ACCEPTED}) instead of an image, as /v1/search/video")
]
VideoId = Annotated[
    str | None,
    Form(alias="id", description="an indexed video's id (in `index`) instead of an upload"),
]


async def _video_sample(
    upload: UploadFile | None, item: str | None, index: str | None, state: ServingState, settings: Settings
):
    """The VideoSample of an uploaded `video`, or of an indexed one (`index` + `id`)."""
    cfg = video_config(state, index)
    if upload is not None:
        async with uploaded_video(upload, settings.video) as path:
            return await run_in_threadpool(_sample, path, cfg, settings.video)
    if not item:
        raise BadInputError(f"video: missing; upload a `video` file ({ACCEPTED}) or give `index` and `id`")
    idx = state.index(index)
    hit = idx.get(item)
    if hit is None:
        raise NotFoundError(f"id: index {idx.name!r} has no item {item!r}")
    if hit.media != "video":
        raise BadInputError(f"id: item {item!r} of index {idx.name!r} is an image, not a video")
    if not Path(hit.path).is_file():
        raise NotFoundError(f"id: the file of video {item!r} is no longer on disk")
    return await run_in_threadpool(_sample, Path(hit.path), cfg, None)


async def _solve(sample, solver: Solver) -> VideoAnswer:
    """solve_video in a worker thread; a model without the needed head answers 409 with the reason."""
    try:
        return await run_in_threadpool(solve_video, sample.segments, solver)
    except XModalError as e:
        raise HTTPException(409, str(e)) from None


def _segments(answer: VideoAnswer) -> list[Segment]:
    return [Segment(**vars(s)) for s in answer.segments]


async def caption_video(
    upload: UploadFile | None,
    item: str | None,
    index: str | None,
    mode: str,
    k: int,
    state: ServingState,
    settings: Settings,
) -> VideoCaptionResponse:
    """/v1/caption for a video: a caption per segment (merged) and for the whole video."""
    check_k(k, settings, limit=settings.limits.max_caption_k)
    sample = await _video_sample(upload, item, index, state, settings)
    solver = await run_in_threadpool(caption_solver, state, caption_method(mode, state.model), index)
    answer = await _solve(sample, solver)
    return VideoCaptionResponse(
        mode=mode,  # as requested
        captions=[{"text": t, "score": s} for t, s in answer.ranked[:k]],
        duration=sample.duration,
        segments=_segments(answer),
    )


async def answer_video(
    upload: UploadFile | None,
    item: str | None,
    index: str | None,
    question: str,
    k: int,
    state: ServingState,
    settings: Settings,
) -> VideoVqaResponse:
    """/v1/vqa for a video: an answer per segment (merged) and for the whole video."""
    question = check_text(question, settings, "question", settings.limits.max_question_chars)
    check_k(k, settings)
    sample = await _video_sample(upload, item, index, state, settings)
    answer = await _solve(sample, vqa_solver(state, question))
    return VideoVqaResponse(
        question=question,
        answers=[{"answer": t, "probability": s} for t, s in answer.ranked[:k]],
        duration=sample.duration,
        segments=_segments(answer),
    )


# -- search by a clip ------------------------------------------------------------------------------


def embed_clip(model, path: Path, cfg: VideoConfig, limits: VideoLimitSettings) -> torch.Tensor:
    """The clip's whole-video vector (D,), made exactly as the index job makes an indexed video's."""
    import av

    from index.embed import decode_video, embed_video

    probe_video(path, limits)
    try:
        decoded = decode_video(str(path), model.preprocess, cfg)
    except (av.error.FFmpegError, ValueError) as e:
        raise BadInputError(f"video: corrupt video data ({_first_line(e)})", 422) from None
    whole, _ = embed_video(model, decoded)
    return torch.from_numpy(whole)


async def _clip_vector(upload: UploadFile, index: str | None, state: ServingState, settings: Settings):
    """The uploaded clip's (D,) vector, embedded with `index`'s video settings."""
    cfg = video_config(state, index)
    async with uploaded_video(upload, settings.video) as path:
        return await run_in_threadpool(embed_clip, state.model, path, cfg, settings.video)


_MEDIA = {"video": "video", "image": "image", "any": None}


@router.post(
    "/search/video", dependencies=[Depends(video_body), Depends(form_body)], response_model=SearchResponse
)
async def search_video(
    video: VideoUpload,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    k: Annotated[int, Form(description="how many hits (at most XMODAL_LIMITS__MAX_K)")] = 12,
    index: IndexForm = None,
    media: Annotated[Literal["video", "image", "any"], Form(description="what to find")] = "video",
) -> SearchResponse:
    """Videos (with their best-matching moment) or images that look like an uploaded clip."""
    t0 = time.perf_counter()
    check_k(k, settings)
    vec = await _clip_vector(video, index or None, state, settings)
    res = await search_vector(state, encoders, vec, k, index or None, _MEDIA[media], None)
    res.took_ms = (time.perf_counter() - t0) * 1000
    return res


@router.post(
    "/search/video-to-text",
    dependencies=[Depends(video_body), Depends(form_body)],
    response_model=CaptionsResponse,
)
async def video_to_text(
    video: VideoUpload,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    k: CaptionsK = 5,
    texts: TextsForm = None,
    index: IndexForm = None,
) -> CaptionsResponse:
    """Captions that best describe an uploaded clip: from `texts` (one per line) or the index's captions."""
    candidates = candidate_texts(texts, index or None, k, state, settings)  # before decoding
    vec = await _clip_vector(video, index or None, state, settings)
    return await captions_response(state, encoders, vec, candidates, index or None, k)
