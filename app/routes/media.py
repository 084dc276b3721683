"""Media files by index and item id only (clients never send paths): full file or JPEG thumbnail."""

from pathlib import Path

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from app.deps import ServingDep
from app.media import thumbnail_jpeg
from app.registry import NotFoundError

router = APIRouter(tags=["media"])
# Media files are served as they are on disk; an SVG may carry script, so opened on its own it is
# sandboxed, and no response is content-sniffed into another type.
HEADERS = {
    "Cache-Control": "public, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox",
}


def media_path(state, index: str, item_id: str) -> Path:
    """The file behind an item; 404 for an unknown index, item or a file that has gone."""
    idx = state.index(index)
    hit = idx.get(item_id)
    if hit is None:
        raise NotFoundError(f"item {item_id!r} not found in index {idx.name!r}")
    path = Path(hit.path)
    if not path.is_file():
        raise NotFoundError(f"item {item_id!r}: its media file is missing on the server")
    return path


@router.get(
    "/media/{index}/{item_id:path}", responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}}}}
)
async def media(
    index: str,
    item_id: str,
    state: ServingDep,
    thumb: bool = Query(False, description="a JPEG thumbnail (a poster frame for videos)"),
    t: float | None = Query(None, ge=0, description="video poster time in seconds"),
) -> Response:
    """The item's image or video (Range requests supported), or a JPEG thumbnail with ?thumb=1."""
    path = media_path(state, index, item_id)
    if thumb:
        data = await run_in_threadpool(thumbnail_jpeg, str(path), path.stat().st_mtime, t)
        return Response(data, media_type="image/jpeg", headers=HEADERS)
    return FileResponse(path, headers=HEADERS)
