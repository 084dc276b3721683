"""Route dependencies as `Annotated` aliases; tests replace them with `app.dependency_overrides`."""

import hmac
import unicodedata
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, File, HTTPException, Request, UploadFile
from PIL import Image

from app.config import Settings
from app.inference import Encoders
from app.limits import upload_body
from app.media import ACCEPTED, BadInputError, ImageDecoder
from app.registry import Registry, ServingState
from index.store import FilterError, check_filter

# Dependencies are `async def` although they do not await: FastAPI runs plain `def` dependencies in
# its thread pool, a hop per dependency per request that costs more than the work on a busy host.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_encoders(request: Request) -> Encoders:
    return request.app.state.encoders


async def get_decoder(request: Request) -> ImageDecoder:
    return request.app.state.decoder


async def get_serving(registry: Annotated[Registry, Depends(get_registry)]) -> AsyncIterator[ServingState]:
    """The current model + indexes, held until the response is done (a hot-swap does not close them)."""
    with registry.acquire() as state:
        yield state


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
EncodersDep = Annotated[Encoders, Depends(get_encoders)]
ServingDep = Annotated[ServingState, Depends(get_serving)]
DecoderDep = Annotated[ImageDecoder, Depends(get_decoder)]


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def form_body(request: Request) -> None:
    """The form routes' body type: another (JSON, say) answers 415 saying what to send, where FastAPI
    would read it as an empty form and name each field as missing."""
    ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if ctype not in FORM_TYPES:
        raise BadInputError(
            f"body: content type {ctype or '(none)'!r} is not accepted; send multipart/form-data", 415
        )


FormBody = Annotated[None, Depends(form_body)]

IMAGE_FIELD = (
    f"the image: {ACCEPTED}; at most XMODAL_LIMITS__MAX_UPLOAD_BYTES bytes (default 10 MiB) and "
    "XMODAL_LIMITS__MAX_IMAGE_PIXELS pixels (default 40 megapixels)"
)


async def _decoded(upload: UploadFile, decoder: ImageDecoder, settings: Settings) -> Image.Image:
    data = await upload.read(settings.limits.max_upload_bytes + 1)
    return await decoder.decode(data, "image")


async def image_upload(
    image: Annotated[UploadFile, File(description=IMAGE_FIELD)],
    decoder: DecoderDep,
    settings: SettingsDep,
    _upload: Annotated[None, Depends(upload_body)],
    _form: FormBody,
) -> Image.Image:
    """The shared image input of every multipart image route: a multipart file field `image`, decoded
    in the bounded decode pool (off the event loop, downscaled early, accepted formats only).

    A route adopts it by taking `image: ImageDep` and declaring its other fields as `Form()` parameters,
    e.g. `k: Annotated[int, Form(description=...)] = 5`; it then gets the upload body limit, the 413/415/
    422/503 answers and an OpenAPI multipart schema with nothing more to write."""
    return await _decoded(image, decoder, settings)


async def optional_image_upload(
    decoder: DecoderDep,
    settings: SettingsDep,
    _upload: Annotated[None, Depends(upload_body)],
    _form: FormBody,
    image: Annotated[UploadFile | None, File(description=IMAGE_FIELD + "; or a `video`, or an `id`")] = None,
) -> Image.Image | None:
    """image_upload for the routes that take an image or a video (/v1/caption, /v1/vqa): None without one."""
    return None if image is None else await _decoded(image, decoder, settings)


ImageDep = Annotated[Image.Image, Depends(image_upload)]
OptionalImageDep = Annotated[Image.Image | None, Depends(optional_image_upload)]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison of any header text (compare_digest refuses non-ASCII str)."""
    enc = "utf-8", "surrogateescape"
    return hmac.compare_digest(given.encode(*enc), secret.encode(*enc))


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Query routes: when XMODAL_API_KEYS is set, `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if not settings.api_keys:
        return
    key = _bearer(request) or request.headers.get("x-api-key")
    if not key or not any(_same(key, k) for k in settings.api_keys):
        raise HTTPException(
            401, "Authorization: an API key is required (Bearer or X-API-Key)", {"WWW-Authenticate": "Bearer"}
        )


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Admin routes: disabled without XMODAL_ADMIN_TOKEN; with it, `Authorization: Bearer <token>`."""
    if settings.admin_token is None:
        raise HTTPException(403, "admin routes are disabled: set XMODAL_ADMIN_TOKEN to enable them")
    token = _bearer(request)
    if token is None or not _same(token, settings.admin_token):
        raise HTTPException(
            401, "Authorization: a valid admin bearer token is required", {"WWW-Authenticate": "Bearer"}
        )


def check_k(k: int, settings: Settings, field: str = "k", limit: int | None = None) -> int:
    limit = limit or settings.limits.max_k
    if not 1 <= k <= limit:
        raise BadInputError(f"{field}: {k} is out of range; must be between 1 and {limit}")
    return k


def caption_method(mode: str, model) -> str:
    """The caption mode a request runs: auto becomes generate for a model with its own captioning
    decoder (CoCa), which captions any image; otherwise auto is resolved by the solvers."""
    return "generate" if mode == "auto" and model.has_text_decoder else mode


def check_text(text: str, settings: Settings, field: str, limit: int | None = None) -> str:
    """Stripped text, non-empty, at most `limit` characters (default XMODAL_LIMITS__MAX_TEXT_CHARS) and
    free of lone surrogates and control characters (which tokenizers reject), checked before the text
    joins a batch."""
    limit = limit or settings.limits.max_text_chars
    text = (text or "").strip()
    if not text:
        raise BadInputError(f"{field}: must not be empty")
    if len(text) > limit:
        raise BadInputError(f"{field}: {len(text)} characters is over the limit of {limit} characters")
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cs", "Cc") and ch not in "\t\n\r":
            kind = "a lone surrogate" if unicodedata.category(ch) == "Cs" else "a control character"
            raise BadInputError(f"{field}: {kind} (U+{ord(ch):04X}) at position {i}; send plain UTF-8 text")
    return text


def check_where(where: object) -> dict | None:
    """A `where` filter the metadata store can run (index.store.check_filter), checked before the query
    joins a batch; a bad one answers 422 naming the field."""
    try:
        return check_filter(where)
    except FilterError as e:
        raise BadInputError(str(e)) from None
