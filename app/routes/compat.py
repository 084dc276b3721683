"""clip-retrieval backend protocol (clip_back.py): /knn-service, /metadata, /indices-list.

Bodies are parsed as JSON whatever the Content-Type (clip_retrieval's ClipClient posts a JSON
string as form data). Answers keep that backend's shape: a list of {"id", "similarity", "caption",
"url", ...}. Its safety, violence and aesthetic options are accepted and have no effect (xmodal has
no such models); `deduplicate` (default true, as in ClipClient) leaves out image hits whose score and
caption repeat an earlier hit's (what identical embeddings produce; LoadedIndex.search `unique`).
"""

import json
from typing import Any
from urllib.parse import urlsplit

import torch
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.deps import DecoderDep, EncodersDep, ServingDep, SettingsDep, check_k, check_text
from app.limits import upload_body
from app.media import BadInputError
from app.routes.search import media_url, public_meta
from app.schemas import KNN_QUERIES, KnnRequest, MetadataRequest

router = APIRouter(tags=["clip-retrieval"])

KNN_EXAMPLE = {
    "text": "a cartoon cow", "image": None, "image_url": None, "embedding_input": None,
    "modality": "image", "num_images": 10, "num_result_ids": 10, "indice_name": "demo",
    "deduplicate": True, "use_safety_model": False, "use_violence_detector": False,
    "use_mclip": False, "aesthetic_score": 9, "aesthetic_weight": 0.5,
}  # fmt: skip


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError; nesting too deep
        raise BadInputError(f"body: not valid JSON ({str(e)[:200]})", 400) from None
    if not isinstance(body, dict):
        raise BadInputError("body: must be a JSON object", 400)
    return body


def _parsed(model: type[BaseModel], body: dict) -> BaseModel:
    """The body as `model`, checked as strictly as its schema reads (JSON's true is no number, "10" no
    count); otherwise a 422 naming each field that is off, as FastAPI's own validation answers."""
    try:
        return model.model_validate(body, strict=True)
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None


async def _fetch(url: str, settings: Settings) -> bytes:
    """image_url: only when XMODAL_FETCH__ENABLED and the host is on XMODAL_FETCH__ALLOW_HOSTS."""
    if not settings.fetch.enabled:
        raise BadInputError(
            "image_url: fetching URLs is disabled on this server (XMODAL_FETCH__ENABLED)", 400
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in settings.fetch.allow_hosts:
        raise BadInputError(
            f"image_url: host {parts.hostname!r} is not on the allow-list (XMODAL_FETCH__ALLOW_HOSTS)", 400
        )
    import httpx

    limit = settings.limits.max_upload_bytes
    data = bytearray()
    try:
        async with (
            httpx.AsyncClient(timeout=settings.fetch.timeout_s, follow_redirects=False) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise BadInputError(f"image_url: the server answered {resp.status_code}", 400)
            async for chunk in resp.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise BadInputError(f"image_url: over the upload limit of {limit} bytes", 413)
    except httpx.HTTPError as e:
        raise BadInputError(f"image_url: could not fetch ({e})", 400) from None
    return bytes(data)


async def _query_vector(req: KnnRequest, state, encoders, decoder, settings: Settings) -> torch.Tensor:
    """(D,) normalised query from text, image (base64), image_url or embedding_input."""
    given = [f for f, absent in KNN_QUERIES.items() if getattr(req, f) not in absent]
    if len(given) != 1:
        raise BadInputError(
            "query: send exactly one of text, image, image_url, embedding_input "
            f"(got {', '.join(given) or 'none'})"
        )
    if given == ["text"]:
        return await encoders.encode_text(state.model, check_text(req.text, settings, "text"))
    if given == ["image"]:
        return await encoders.encode_image(state.model, await decoder.decode(req.image, "image"))
    if given == ["image_url"]:
        data = await _fetch(req.image_url, settings)
        return await encoders.encode_image(state.model, await decoder.decode(data, "image_url"))
    dim = state.model.embed_dim
    t = torch.tensor(req.embedding_input, dtype=torch.float64)  # any JSON number short of overflow
    if t.numel() != dim or not torch.isfinite(t).all() or not t.any():
        raise BadInputError(f"embedding_input: must be {dim} finite numbers, not all zero (got {t.numel()})")
    t = t / t.abs().max()  # first: the squares of 1e200 would overflow the norm
    return (t / t.norm()).float()


def _body(model) -> dict:
    """openapi_extra documenting a JSON body these routes parse themselves."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


KNN_BODY = _body(KnnRequest)
KNN_BODY["requestBody"]["content"]["application/json"]["example"] = KNN_EXAMPLE


@router.post("/knn-service", dependencies=[Depends(upload_body)], openapi_extra=KNN_BODY)
async def knn_service(
    request: Request, state: ServingDep, encoders: EncodersDep, decoder: DecoderDep, settings: SettingsDep
) -> list:
    """Nearest neighbours in clip-retrieval's shape: modality image -> items, text -> captions."""
    req = _parsed(KnnRequest, await _json_body(request))
    num_images = check_k(req.num_images, settings, "num_images")
    num_ids = max(num_images, min(req.num_result_ids or num_images, settings.limits.max_k))
    index = state.index(req.indice_name or None)
    vec = await _query_vector(req, state, encoders, decoder, settings)
    base = str(request.base_url).rstrip("/")
    if req.modality == "text":
        texts, bank = await run_in_threadpool(state.caption_bank, index.name)
        top = torch.topk(bank @ vec, min(num_ids, len(texts)))
        results = [{"id": int(i), "similarity": float(s), "caption": texts[i]}
                   for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]  # fmt: skip
    else:
        hits = await encoders.search(index, vec, num_ids, None, None, unique=req.deduplicate)
        results = [_result(index.name, h, base) for h in hits]
    return results[:num_images]


def _result(index_name: str, h, base: str) -> dict:
    return {"id": h.item_id, "similarity": float(h.score), "caption": h.caption,
            "url": base + media_url(index_name, h.item_id), "media": h.media}  # fmt: skip


@router.post("/metadata", openapi_extra=_body(MetadataRequest))
async def metadata(request: Request, state: ServingDep) -> list:
    """{"ids": [...], "indice_name": ...} -> [{"id", "metadata": {caption, url, ...}}]."""
    req = _parsed(MetadataRequest, await _json_body(request))
    ids = req.ids
    index = state.index(req.indice_name or None)
    base = str(request.base_url).rstrip("/")

    def lookup() -> list:  # up to 1,000 SQLite reads: in a worker thread, not on the event loop
        out = []
        for item_id in ids:
            h = index.get(str(item_id))
            meta = None if h is None else {**public_meta(h.meta), **_result(index.name, h, base)}
            if meta is not None:
                meta.pop("id")
                meta.pop("similarity")
            out.append({"id": item_id, "metadata": meta})
        return out

    return await run_in_threadpool(lookup)


@router.get("/indices-list")
async def indices_list(state: ServingDep) -> list[str]:
    """Names of the loaded indexes, default first."""
    names = sorted(state.indexes)
    if state.default_index in names:
        names.remove(state.default_index)
        names.insert(0, state.default_index)
    return names
