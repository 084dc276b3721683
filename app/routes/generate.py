"""Image understanding and embeddings: caption, VQA, zero-shot classify, embed text/image."""

import asyncio
import re
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, Form
from PIL import Image
from starlette.concurrency import run_in_threadpool

from app.deps import (
    EncodersDep,
    ImageDep,
    OptionalImageDep,
    ServingDep,
    SettingsDep,
    caption_method,
    check_k,
    check_text,
)
from app.limits import texts_body, video_body
from app.media import BadInputError
from app.routes.search import rank_texts
from app.routes.video import (
    OptionalVideo,
    VideoCaptionResponse,
    VideoId,
    VideoVqaResponse,
    answer_video,
    caption_video,
)
from app.schemas import (
    CaptionMode,
    CaptionResponse,
    ClassifyResponse,
    EmbedResponse,
    EmbedTextRequest,
    VqaResponse,
)

router = APIRouter(prefix="/v1", tags=["generate"])

# /v1/caption and /v1/vqa take one input: an `image`, a `video`, or the `id` of an indexed video. FastAPI's
# form schema lists the three as optional fields; this adds that one of them must be there (an empty id
# reads as none).
ONE_OF = {
    "anyOf": [
        {"required": ["image"]},
        {"required": ["video"]},
        {"required": ["id"], "properties": {"id": {"minLength": 1}}},
    ]
}
ONE_INPUT = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": ONE_OF}}}}


def _is_video(image: Image.Image | None, video, item: str | None) -> bool:
    """A request about a video: a `video` file, or an `id` without an image."""
    return video is not None or (image is None and bool(item))


def _labels(raw: str, settings) -> list[str]:
    """The distinct labels of a `labels` field: one text as check_text takes it (at most
    XMODAL_LIMITS__MAX_TEXT_CHARS in all), split at commas and newlines; at least 2 given."""
    given = [p.strip() for p in re.split(r"[\n,]", check_text(raw, settings, "labels")) if p.strip()]
    if len(given) < 2:
        raise BadInputError(
            f"labels: {len(given)} label(s) given; at least 2 are needed, comma- or newline-separated"
        )
    return list(dict.fromkeys(given))


def _need_image(image: Image.Image | None) -> Image.Image:
    if image is None:
        raise BadInputError(
            "image: missing; send an `image` or a `video` file, or `index` + `id` of an indexed video"
        )
    return image


async def _run_head(fn, *args, **kwargs):
    """A head or solver call in a worker thread; its errors reach the one handler (app.main.STATUS:
    a model without the head asked for answers 409)."""
    return await run_in_threadpool(fn, *args, **kwargs)


def _calibration(state):
    """The solvers' thresholds from the model card (written by `xmodal eval`)."""
    from training.understand import Calibration

    return Calibration.from_card(state.card)


async def _bank(state, encoders, vec: torch.Tensor, index: str | None, k: int) -> list[tuple[str, float]]:
    """The index's captions nearest to an image; none when the service has no index (auto mode)."""
    if index is None and state.default_index is None:
        return []
    state.index(index)  # an unknown name is the caller's error (404)
    return await rank_texts(state, encoders, vec, None, index, k)


@router.post(
    "/caption",
    dependencies=[Depends(video_body)],
    response_model=CaptionResponse | VideoCaptionResponse,
    openapi_extra=ONE_INPUT,
)
async def caption(
    image: OptionalImageDep,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    video: OptionalVideo = None,
    item: VideoId = None,
    mode: Annotated[
        CaptionMode,
        Form(
            description="auto: the method that knows the image's domain (each caption names it); "
            "generate: the caption decoder; retrieve: the index's captions"
        ),
    ] = "auto",
    k: Annotated[
        int,
        Form(
            description="how many captions (at most XMODAL_LIMITS__MAX_CAPTION_K)",
            json_schema_extra={"x-limit": "max_caption_k"},
        ),
    ] = 1,
    index: Annotated[
        str | None, Form(description="caption bank for mode=retrieve and mode=auto; the index of `id`")
    ] = None,
) -> CaptionResponse | VideoCaptionResponse:
    """Captions for an image, each naming its method: decoder, bank, or concept (WordNet, via the
    image tower's classes); for a video, a caption per segment and for the whole video."""
    index = index or None
    if _is_video(image, video, item):
        return await caption_video(video, item, index, mode, k, state, settings)
    image = _need_image(image)
    check_k(k, settings, limit=settings.limits.max_caption_k)
    mode = caption_method(mode, state.model)
    if mode == "retrieve":
        state.index(index)
        vec = await encoders.encode_image(state.model, image)
        ranked = await rank_texts(state, encoders, vec, None, index, k)
        captions = [{"text": t, "score": float(s), "method": "bank"} for t, s in ranked]
    elif mode == "generate":
        # the model's own captioner: its caption head, or a CoCa's text decoder
        generate = state.model.generate_captions
        ranked = (await _run_head(generate, [image], beam_size=max(3, k), max_len=30, k=k))[0]
        captions = [{"text": t, "score": float(s), "method": "decoder"} for t, s in ranked]
    else:
        from training.understand import caption_image

        feat = await encoders.image_features(state.model, image)
        bank = await _bank(state, encoders, feat.embedding, index, max(5, k))
        found = await _run_head(caption_image, state.model, feat, _calibration(state), bank, k, image)
        captions = [{"text": c.text, "score": c.score, "method": c.method, "unsure": c.unsure} for c in found]
    return CaptionResponse(mode=mode, captions=captions)


@router.post(
    "/vqa",
    dependencies=[Depends(video_body)],
    response_model=VqaResponse | VideoVqaResponse,
    openapi_extra=ONE_INPUT,
)
async def vqa(
    image: OptionalImageDep,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    question: Annotated[
        str,
        Form(
            min_length=1,
            description="at most XMODAL_LIMITS__MAX_QUESTION_CHARS characters",
            examples=["what colour is the shape?"],
            json_schema_extra={"x-limit": "max_question_chars"},
        ),
    ],
    video: OptionalVideo = None,
    item: VideoId = None,
    k: Annotated[int, Form(description="how many answers (at most XMODAL_LIMITS__MAX_K)")] = 3,
    index: Annotated[str | None, Form(description="the index of `id`")] = None,
) -> VqaResponse | VideoVqaResponse:
    """Top-k answers to a question about an image, with probabilities, the solver that answered, and
    `unsure` where the model cannot answer it; for a video, an answer per segment and overall."""
    from training.understand import answer_question

    if _is_video(image, video, item):
        return await answer_video(video, item, index or None, question, k, state, settings)
    image = _need_image(image)
    question = check_text(question, settings, "question", settings.limits.max_question_chars)
    check_k(k, settings)
    feat = await encoders.image_features(state.model, image)
    found = await _run_head(answer_question, state.model, feat, image, question, _calibration(state), k)
    answers = [{"answer": a.text, "probability": float(a.score)} for a in found if a.text]
    return VqaResponse(
        question=question, answers=answers, solver=found[0].method, unsure=any(a.unsure for a in found[:1])
    )


@router.post("/classify", response_model=ClassifyResponse)
async def classify(
    image: ImageDep,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    labels: Annotated[
        str,
        Form(
            min_length=1,
            examples=["cat, dog, red square"],
            description="at least 2 labels, comma- or newline-separated (repeats count once), at most "
            "XMODAL_LIMITS__MAX_TEXT_CHARS characters in all",
        ),
    ],
) -> ClassifyResponse:
    """Zero-shot label probabilities for 'a photo of a {label}.' by the model's rule (CLIP: softmax,
    SigLIP: sigmoid with its bias)."""
    labels = _labels(labels, settings)
    prompts = [settings.classify_template.format(label) for label in labels]
    feat, *label_vecs = await asyncio.gather(
        encoders.image_features(state.model, image), *(encoders.encode_text(state.model, p) for p in prompts)
    )
    probs = state.model.zero_shot_probs(feat.embedding, torch.stack(label_vecs))  # (L,), the model's own rule
    ranked = sorted(zip(labels, probs.tolist(), strict=True), key=lambda lp: -lp[1])
    return ClassifyResponse(labels=[{"label": lab, "probability": p} for lab, p in ranked])


@router.post("/embed/text", dependencies=[Depends(texts_body)], response_model=EmbedResponse)
async def embed_text(
    body: EmbedTextRequest, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> EmbedResponse:
    """Normalised text embeddings, one per input text."""
    if not body.texts:
        raise BadInputError("texts: must contain at least one text")
    if len(body.texts) > settings.limits.max_texts:
        raise BadInputError(
            f"texts: {len(body.texts)} texts is over the limit of {settings.limits.max_texts}"
        )
    texts = [check_text(t, settings, f"texts[{i}]") for i, t in enumerate(body.texts)]
    vecs = await asyncio.gather(*(encoders.encode_text(state.model, t) for t in texts))
    return EmbedResponse(model=state.model_id, dim=state.model.embed_dim, vectors=[v.tolist() for v in vecs])


@router.post("/embed/image", response_model=EmbedResponse)
async def embed_image(image: ImageDep, state: ServingDep, encoders: EncodersDep) -> EmbedResponse:
    """The normalised embedding of an uploaded image (multipart `image`)."""
    vec = await encoders.encode_image(state.model, image)
    return EmbedResponse(model=state.model_id, dim=state.model.embed_dim, vectors=[vec.tolist()])
