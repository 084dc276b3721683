"""Media files by index and item id only (clients never send paths): full file or JPEG thumbnail."""

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from app.deps import ServingDep, SettingsDep
from app.media import thumbnail_jpeg
from app.registry import NotFoundError
from training.media_kinds import IMAGE_EXTS, VIDEO_EXTS

router = APIRouter(tags=["media"])
# Media files are served as they are on disk; an SVG may carry script, so opened on its own it is
# sandboxed, and no response is content-sniffed into another type.
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox",
}


MAX_POSTER_S = 7 * 24 * 3600.0  # a poster time past any video (and within a seek's int64)


def media_type(name: str) -> str:
    """The Content-Type a file is served with, by its extension."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# what the route may send: any indexed kind of file as it is, and JPEG thumbnails
SERVED_TYPES = sorted({media_type("x" + ext) for ext in IMAGE_EXTS | VIDEO_EXTS} | {"image/jpeg"})


def item_file(state, index: str, item_id: str) -> Path:
    """The file behind an item; 404 for an unknown index, item or a file that has gone."""
    idx = state.index(index)
    hit = idx.get(item_id)
    if hit is None:
        raise NotFoundError(f"item {item_id!r} not found in index {idx.name!r}")
    path = Path(hit.path)
    if not path.is_file():
        raise NotFoundError(f"item {item_id!r}: its media file is missing on the server")
    return path


@router.get("/media/{index}/{item_id:path}", responses={200: {"content": {t: {} for t in SERVED_TYPES}}})
async def media(
    index: str,
    item_id: str,
    state: ServingDep,
    settings: SettingsDep,
    thumb: bool = Query(False, description="a JPEG thumbnail (a poster frame for videos)"),
    t: float | None = Query(
        None, ge=0, le=MAX_POSTER_S, allow_inf_nan=False, description="video poster time in seconds"
    ),
) -> Response:
    """The item's image or video (Range requests supported), or a JPEG thumbnail with ?thumb=1."""
    path = item_file(state, index, item_id)
    # with API keys, media is per client: no shared cache may keep it
    cache = "private, max-age=3600" if settings.api_keys else "public, max-age=3600"
    headers = {**HEADERS, "Cache-Control": cache}
    if thumb:
        data = await run_in_threadpool(thumbnail_jpeg, str(path), path.stat().st_mtime, t)
        return Response(data, media_type="image/jpeg", headers=headers)
    return FileResponse(path, media_type=media_type(path.name), headers=headers)
