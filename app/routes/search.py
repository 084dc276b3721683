"""Search: text -> media, image -> media, image -> captions."""

import asyncio
import time
from pathlib import PurePath
from typing import Annotated, Literal
from urllib.parse import quote

import torch
from fastapi import APIRouter, Form
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.deps import EncodersDep, ImageDep, ServingDep, SettingsDep, check_k, check_text, check_where
from app.inference import TextQuery
from app.media import BadInputError
from app.registry import ServingState
from app.schemas import (
    CaptionsResponse,
    Media,
    SearchHit,
    SearchResponse,
    TextSearchRequest,
)

router = APIRouter(prefix="/v1", tags=["search"])


def media_url(index: str, item_id: str) -> str:
    return f"/media/{quote(index, safe='')}/{quote(item_id, safe='')}"


def public_meta(meta: dict | None) -> dict:
    """An item's metadata as clients see it: plain values only, and an absolute server path (a corpus'
    `source`, say) cut to its file name."""
    out = {}
    for k, v in (meta or {}).items():
        if isinstance(v, str) and PurePath(v).is_absolute():
            v = PurePath(v).name
        if isinstance(v, str | int | float | bool | None):
            out[k] = v
    return out


def to_hit(index_name: str, h) -> SearchHit:
    url = media_url(index_name, h.item_id)
    thumb = f"{url}?thumb=1" + (f"&t={h.start:g}" if h.start is not None else "")
    meta = public_meta(h.meta)
    return SearchHit(
        id=h.item_id, score=float(h.score), caption=h.caption, media=h.media, url=url,
        thumbnail_url=thumb, start=h.start, end=h.end, meta=meta,
    )  # fmt: skip


async def search_vector(
    state: ServingState,
    encoders,
    vec: torch.Tensor,
    k: int,
    index: str | None,
    media: str | None,
    where: dict | None,
) -> SearchResponse:
    """Searches one (D,) query (batched with concurrent ones) and shapes the hits."""
    t0 = time.perf_counter()
    idx = state.index(index)
    hits = await encoders.search(idx, vec, k, media, where)
    return SearchResponse(
        index=idx.name, version=str(idx.version), took_ms=(time.perf_counter() - t0) * 1000,
        hits=[to_hit(idx.name, h) for h in hits],
    )  # fmt: skip


@router.post("/search/text", response_model=SearchResponse)
async def search_text(
    body: TextSearchRequest, state: ServingDep, encoders: EncodersDep, settings: SettingsDep
) -> SearchResponse:
    """Images and videos that match a text query."""
    t0 = time.perf_counter()
    query = check_text(body.query, settings, "query")
    check_k(body.k, settings)
    where = check_where(body.where)
    idx = state.index(body.index)  # unknown index: 404 before any model work
    hits = await encoders.text_search(state.model, TextQuery(query, idx, body.k, body.media, where))
    return SearchResponse(
        index=idx.name, version=str(idx.version), took_ms=(time.perf_counter() - t0) * 1000,
        hits=[to_hit(idx.name, h) for h in hits],
    )  # fmt: skip


# Form fields shared by the image routes (the image itself is app.deps.ImageDep)
IndexForm = Annotated[str | None, Form(description="index name; default: the service's default index")]
MediaForm = Annotated[Media | Literal[""] | None, Form(description="only images or only videos")]


@router.post("/search/image", response_model=SearchResponse)
async def search_image(
    image: ImageDep,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    k: Annotated[int, Form(description="how many hits (at most XMODAL_LIMITS__MAX_K)")] = 12,
    index: IndexForm = None,
    media: MediaForm = None,
) -> SearchResponse:
    """Images and videos that look like an uploaded image (multipart: `image` file, `k`, `index`, `media`)."""
    t0 = time.perf_counter()
    check_k(k, settings)
    state.index(index or None)
    vec = await encoders.encode_image(state.model, image)
    res = await search_vector(state, encoders, vec, k, index or None, media or None, None)
    res.took_ms = (time.perf_counter() - t0) * 1000
    return res


async def rank_texts(
    state: ServingState, encoders, image_vec: torch.Tensor, texts: list[str] | None, index: str | None, k: int
) -> list[tuple[str, float]]:
    """The k texts closest to an image: from `texts`, or else from the index's caption bank."""
    if texts:
        bank = torch.stack(await asyncio.gather(*(encoders.encode_text(state.model, t) for t in texts)))
    else:
        texts, bank = await run_in_threadpool(state.caption_bank, index)
    scores = bank @ image_vec  # (N,)
    top = torch.topk(scores, min(k, len(texts)))
    return [(texts[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]


def split_texts(raw: str | None, settings: Settings, field: str) -> list[str]:
    """Non-empty lines, each within the text limit, at most XMODAL_LIMITS__MAX_TEXTS of them."""
    parts = [p.strip() for p in (raw or "").split("\n") if p.strip()]
    if len(parts) > settings.limits.max_texts:
        raise BadInputError(f"{field}: {len(parts)} entries is over the limit of {settings.limits.max_texts}")
    return [check_text(p, settings, field) for p in parts]


# Form fields of the image- and clip-to-text routes
CaptionsK = Annotated[int, Form(description="how many captions (at most XMODAL_LIMITS__MAX_K)")]
TextsForm = Annotated[str | None, Form(description="candidates, one per line; default: the captions")]


def candidate_texts(texts: str | None, index: str | None, k: int, state: ServingState, settings) -> list[str]:
    """An image- or clip-to-text request's candidates, checked before any decoding: the `texts` lines, or
    none when the index's captions are to be ranked (an unknown index is a 404 here)."""
    check_k(k, settings)
    candidates = split_texts(texts, settings, "texts")
    if not candidates:
        state.index(index)
    return candidates


async def captions_response(
    state: ServingState, encoders, vec: torch.Tensor, texts: list[str] | None, index: str | None, k: int
) -> CaptionsResponse:
    """/search/image-to-text's and /search/video-to-text's answer: the k texts closest to `vec`."""
    ranked = await rank_texts(state, encoders, vec, texts, index, k)
    return CaptionsResponse(captions=[{"text": t, "score": s} for t, s in ranked])


@router.post("/search/image-to-text", response_model=CaptionsResponse)
async def image_to_text(
    image: ImageDep,
    state: ServingDep,
    encoders: EncodersDep,
    settings: SettingsDep,
    k: CaptionsK = 5,
    texts: TextsForm = None,
    index: IndexForm = None,
) -> CaptionsResponse:
    """Captions that best describe an image: from `texts` (one per line) or the index's captions."""
    candidates = candidate_texts(texts, index or None, k, state, settings)
    vec = await encoders.encode_image(state.model, image)
    return await captions_response(state, encoders, vec, candidates, index or None, k)
