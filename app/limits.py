"""Request body limits, counted on the stream as the bytes arrive (chunked bodies included).

A JSON route takes at most XMODAL_LIMITS__MAX_JSON_BYTES; a multipart body, or any body of a route
that carries an upload (it depends on `upload_body`, as the shared image input does), takes the upload
limit; a route marked `video_body` the video limit, and one marked `texts_body` room for its most texts.
Reading stops at the chunk that crosses the limit, and the request answers 413 naming the limit.
"""

from fastapi import HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import LimitSettings


async def upload_body() -> None:
    """Marks a route whose body carries an upload (multipart or base64): it gets the upload limit."""


async def texts_body() -> None:
    """Marks a JSON route that takes up to XMODAL_LIMITS__MAX_TEXTS texts (/v1/embed/text): its limit
    comes from those maxima (texts_body_bytes), so the most the route documents fits in its body."""


def texts_body_bytes(limits: LimitSettings) -> int:
    """MAX_TEXTS texts of MAX_TEXT_CHARS characters, each character JSON-escaped at its longest (an
    astral one as two \\uXXXX escapes, 12 bytes) with its quotes and comma, plus the JSON limit for
    the rest of the body (keys, whitespace)."""
    return limits.max_texts * (12 * limits.max_text_chars + 3) + limits.max_json_bytes


async def video_body() -> None:
    """Marks a route that takes a video upload: it gets the larger of the upload and video limits."""


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int, setting: str):
        super().__init__(413, f"body: over the limit of {limit} bytes for this route ({setting})")


def _uses(dependant: Dependant, call) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


class BodyLimitMiddleware:
    """Pure ASGI. The route (matched before its body is read) picks the limit at the first read."""

    def __init__(self, app: ASGIApp, limits: LimitSettings, video_bytes: int = 0):
        self.app, self.limits = app, limits
        upload = (limits.upload_body_bytes, "XMODAL_LIMITS__MAX_UPLOAD_BYTES")
        # a video route's body holds an image or a video (XMODAL_VIDEO__MAX_BYTES plus the other fields)
        self.video = max(upload, (video_bytes + 64 * 1024, "XMODAL_VIDEO__MAX_BYTES"))
        self.texts = (texts_body_bytes(limits), "XMODAL_LIMITS__MAX_TEXTS x XMODAL_LIMITS__MAX_TEXT_CHARS")
        self._kinds: dict[int, str] = {}  # id(route) -> "video" | "upload" | "texts" | "json"

    def _limit(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str]:
        route = scope.get("route")
        kind = "json"
        if isinstance(route, APIRoute):
            key = id(route)
            if key not in self._kinds:
                d = route.dependant
                marked = [("video", video_body), ("upload", upload_body), ("texts", texts_body)]
                self._kinds[key] = next((name for name, mark in marked if _uses(d, mark)), kind)
            kind = self._kinds[key]
        if kind == "video":
            return self.video
        if kind == "texts":
            return self.texts
        if kind == "upload" or headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            return self.limits.upload_body_bytes, "XMODAL_LIMITS__MAX_UPLOAD_BYTES"
        return self.limits.max_json_bytes, "XMODAL_LIMITS__MAX_JSON_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen, limit, started = 0, None, False

        async def receive_limited() -> Message:
            nonlocal seen, limit
            if limit is None:
                headers = dict(scope["headers"])
                limit = self._limit(scope, headers)
                length = headers.get(b"content-length", b"")
                if length.isdigit() and int(length) > limit[0]:
                    raise BodyTooLargeError(*limit)  # before reading a byte
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit[0]:
                    raise BodyTooLargeError(*limit)
            return message

        async def send_noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_limited, send_noting)
        except BodyTooLargeError as e:  # raised outside a FastAPI route (its handler answers inside one)
            if started:
                raise
            await JSONResponse({"detail": e.detail}, 413)(scope, receive, send)
