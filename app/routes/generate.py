"""Image understanding and embeddings: caption, VQA, zero-shot classify, embed text/image."""

import asyncio

import torch
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from app.deps import EncodersDep, ServingDep, SettingsDep, check_caption_mode, check_k, check_text
from app.limits import video_body
from app.media import BadInputError
from app.routes import video
from app.routes.search import MULTIPART_IMAGE, int_field, rank_texts, read_image_request, split_texts
from app.schemas import (
    CAPTION_MODES,
    CaptionResponse,
    ClassifyResponse,
    EmbedResponse,
    EmbedTextRequest,
    VqaResponse,
)

router = APIRouter(prefix="/v1", tags=["generate"])


def _form(extra: dict) -> dict:
    """The multipart image body of MULTIPART_IMAGE with other form fields."""
    schema = MULTIPART_IMAGE["content"]["multipart/form-data"]["schema"]
    props = {"image": schema["properties"]["image"], **extra}
    required = ["image"] + [k for k, v in extra.items() if v.pop("required", False)]
    body = {"type": "object", "required": required, "properties": props}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


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
    response_model=CaptionResponse,
    openapi_extra=_form({
        "mode": {"type": "string", "enum": list(CAPTION_MODES), "default": "auto",
                 "description": "auto: the method that knows the image's domain (each caption names it); "
                                "generate: the caption decoder; retrieve: the index's captions"},
        "k": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
        "index": {"type": "string", "description": "caption bank for mode=retrieve and mode=auto"},
    }),
)  # fmt: skip
async def caption(
    request: Request, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> CaptionResponse:
    """Captions for an image, each naming its method: decoder, bank, or concept (WordNet, via the
    image tower's classes)."""
    if await video.is_video_request(request):  # a video file or an indexed video's id (issue #16)
        return await video.caption_video(request, state, settings)
    image, fields = await read_image_request(request, settings)
    mode = check_caption_mode(fields, state.model)
    k = check_k(int_field(fields, "k", 1), settings, limit=settings.limits.max_caption_k)
    index = fields.get("index") or None
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
    response_model=VqaResponse,
    openapi_extra=_form({
        "question": {"type": "string", "maxLength": 200, "required": True},
        "k": {"type": "integer", "default": 3},
    }),
)  # fmt: skip
async def vqa(
    request: Request, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> VqaResponse:
    """Top-k answers to a question about an image, with probabilities, the solver that answered, and
    `unsure` where the model cannot answer it."""
    from training.understand import answer_question

    if await video.is_video_request(request):  # a video file or an indexed video's id (issue #16)
        return await video.answer_video(request, state, settings)

    image, fields = await read_image_request(request, settings)
    question = check_text(
        fields.get("question", ""), settings, "question", settings.limits.max_question_chars
    )
    k = check_k(int_field(fields, "k", 3), settings)
    feat = await encoders.image_features(state.model, image)
    found = await _run_head(answer_question, state.model, feat, image, question, _calibration(state), k)
    answers = [{"answer": a.text, "probability": float(a.score)} for a in found if a.text]
    return VqaResponse(
        question=question, answers=answers, solver=found[0].method, unsure=any(a.unsure for a in found[:1])
    )


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    openapi_extra=_form({"labels": {"type": "string", "description": "comma- or newline-separated, >= 2",
                                    "required": True}}),
)  # fmt: skip
async def classify(
    request: Request, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> ClassifyResponse:
    """Zero-shot label probabilities for 'a photo of a {label}.' by the model's rule (CLIP: softmax,
    SigLIP: sigmoid with its bias)."""
    image, fields = await read_image_request(request, settings)
    labels = list(dict.fromkeys(split_texts(fields.get("labels"), settings, "labels", commas=True)))
    if len(labels) < 2:
        raise BadInputError(f"labels: {len(labels)} distinct label(s) given; at least 2 are needed")
    prompts = [settings.classify_template.format(label) for label in labels]
    feat, *label_vecs = await asyncio.gather(
        encoders.image_features(state.model, image), *(encoders.encode_text(state.model, p) for p in prompts)
    )
    probs = state.model.zero_shot_probs(feat.embedding, torch.stack(label_vecs))  # (L,), the model's own rule
    ranked = sorted(zip(labels, probs.tolist(), strict=True), key=lambda lp: -lp[1])
    return ClassifyResponse(labels=[{"label": lab, "probability": p} for lab, p in ranked])


@router.post("/embed/text", response_model=EmbedResponse)
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


@router.post("/embed/image", response_model=EmbedResponse, openapi_extra={"requestBody": MULTIPART_IMAGE})
async def embed_image(
    request: Request, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> EmbedResponse:
    """The normalised embedding of an uploaded image (multipart `image`, or JSON `image_b64`)."""
    image, _ = await read_image_request(request, settings)
    vec = await encoders.encode_image(state.model, image)
    return EmbedResponse(model=state.model_id, dim=state.model.embed_dim, vectors=[vec.tolist()])
