"""The FastAPI app: `create_app(settings)`; its lifespan loads the model and indexes.

Tests build apps with tiny models and indexes by passing a prepared `Registry`, or by setting
XMODAL_* through a Settings object; `xmodal serve` (app/serve.py) runs one under uvicorn.
"""

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app import metrics
from app.batching import BatchTimeoutError, QueueFullError
from app.config import Settings
from app.deps import require_api_key
from app.inference import Encoders
from app.media import BadInputError
from app.registry import IncompatibleIndexError, NotFoundError, NotReadyError, Registry
from app.routes import admin, catalog, compat, generate, media, search, video
from training.errors import XModalError

log = logging.getLogger("xmodal.app")
WEB_DIR = Path(__file__).parent / "web"


def _status(e: XModalError) -> int:
    if isinstance(e, BadInputError):
        return e.status
    for cls, status in (
        (NotFoundError, 404), (IncompatibleIndexError, 409), (QueueFullError, 503),
        (NotReadyError, 503), (BatchTimeoutError, 504),
    ):  # fmt: skip
        if isinstance(e, cls):
            return status
    return 422


async def _xmodal_error(request: Request, e: XModalError) -> JSONResponse:
    status = _status(e)
    headers = {"Retry-After": "1"} if isinstance(e, QueueFullError | NotReadyError) else None
    return JSONResponse({"detail": str(e)}, status_code=status, headers=headers)


async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
    """FastAPI's list of errors as one sentence naming each field."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(parts)}, status_code=422)


async def _unexpected(request: Request, e: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": f"internal error ({type(e).__name__}); see the server log"}, status_code=500
    )


class ObserveMiddleware:
    """Pure ASGI: refuses bodies over `body_limit` by Content-Length (before reading them) and records
    request latency by route template. (No BaseHTTPMiddleware: it costs a task per request.)"""

    def __init__(self, app, body_limit: int):
        self.app, self.body_limit = app, body_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.body_limit:
            detail = f"body: {int(length)} bytes is over the limit of {self.body_limit} bytes"
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUEST_LATENCY.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - t0
            )


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """The service. `registry` may come preloaded (tests); otherwise the lifespan loads
    XMODAL_MODEL and the indexes in a worker thread before the first request is served."""
    settings = settings or Settings()
    registry = registry or Registry(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.switch_interval_ms is not None:
            sys.setswitchinterval(settings.switch_interval_ms / 1000)
        if settings.torch_threads is not None:
            import faiss
            import torch

            torch.set_num_threads(settings.torch_threads)
            faiss.omp_set_num_threads(settings.torch_threads)
        if registry.state is None:
            await asyncio.to_thread(registry.load_initial)
        app.state.encoders = Encoders(settings.batch)
        watcher = asyncio.create_task(registry.watch()) if settings.watch else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            app.state.encoders.close()
            registry.close()

    app = FastAPI(
        title="xmodal",
        version="1",
        summary="Cross-modal retrieval: text <-> image/video search, captions, VQA, zero-shot labels.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.add_exception_handler(XModalError, _xmodal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    body_limit = max(settings.limits.max_upload_bytes * 4 // 3, settings.video.max_bytes) + 64 * 1024
    app.add_middleware(ObserveMiddleware, body_limit=body_limit)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"])
    query_auth = [Depends(require_api_key)]  # no-op unless XMODAL_API_KEYS is set
    for router in (search.router, video.router, generate.router, catalog.router, media.router, compat.router):
        app.include_router(router, dependencies=query_auth)
    app.include_router(catalog.health_router)
    app.include_router(admin.router)  # its own bearer token
    if (WEB_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
