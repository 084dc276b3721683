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
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from app import metrics
from app.batching import BatchTimeoutError, QueueFullError
from app.config import Settings
from app.deps import require_api_key
from app.inference import Encoders
from app.limits import BodyLimitMiddleware
from app.media import BadInputError, ImageDecoder
from app.registry import IncompatibleIndexError, NotFoundError, NotReadyError, Registry
from app.routes import admin, catalog, compat, generate, media, search, video
from app.schemas import ERROR_RESPONSES, document_limits, document_model
from index.store import filter_json_schema
from training.devices import pick_device
from training.errors import XModalError
from training.heads.inference import MissingHeadError

log = logging.getLogger("xmodal.app")
WEB_DIR = Path(__file__).parent / "web"


# One error mapping: the HTTP status of each error class (BadInputError carries its own: 400/413/415/422).
STATUS: dict[type, int] = {
    NotFoundError: 404, IncompatibleIndexError: 409, MissingHeadError: 409, QueueFullError: 503,
    NotReadyError: 503, BatchTimeoutError: 504, XModalError: 422,
}  # fmt: skip
RETRY = (QueueFullError, NotReadyError)  # answered with Retry-After


def http_status(e: Exception) -> int:
    """The status an error answers with: its own (HTTPException, BadInputError) or the first STATUS entry
    it is an instance of; anything else is a bug, 500."""
    if isinstance(e, HTTPException | BadInputError):
        return e.status_code if isinstance(e, HTTPException) else e.status
    if isinstance(e, RequestValidationError):
        return 422
    return next((status for cls, status in STATUS.items() if isinstance(e, cls)), 500)


def _detail(e: Exception) -> str:
    if isinstance(e, RequestValidationError):  # FastAPI's list of errors as one sentence naming each field
        parts = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return "; ".join(parts)
    if isinstance(e, HTTPException):
        return str(e.detail)
    if isinstance(e, XModalError):
        return str(e)
    return f"internal error ({type(e).__name__}); see the server log"


async def error_response(request: Request, e: Exception) -> JSONResponse:
    """The one error handler: {"detail": str} (schemas.ErrorResponse) with the status from http_status."""
    status = http_status(e)
    if status >= 500 and not isinstance(e, XModalError | HTTPException):
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=e)
    headers = dict(getattr(e, "headers", None) or {})
    if isinstance(e, RETRY):
        headers["Retry-After"] = "1"
    return JSONResponse({"detail": _detail(e)}, status_code=status, headers=headers or None)


class ObserveMiddleware:
    """Pure ASGI: records request latency by route template. (No BaseHTTPMiddleware: it costs a task
    per request.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
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


class WebPage(StaticFiles):
    """The web page, mounted at /. The mount matches every path, so a request to an API path with a
    method that path does not take answers that route's 405 (with its Allow header), not the file
    server's."""

    def __init__(self, routes: list, **kw):
        super().__init__(**kw)
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for route in self.routes:
                if not isinstance(route, Mount) and route.matches(scope)[0] == Match.PARTIAL:
                    return await route.handle(scope, receive, send)  # 405, Allow: the route's methods
        return await super().__call__(scope, receive, send)


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
        app.state.encoders = Encoders(settings.batch, pick_device(settings.device))  # the registry's device
        app.state.decoder = ImageDecoder(settings.limits)
        watcher = asyncio.create_task(registry.watch()) if settings.watch else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            app.state.encoders.close()
            app.state.decoder.close()
            registry.close()

    docs = settings.public_docs or not settings.api_keys
    app = FastAPI(
        title="xmodal",
        version="1",
        summary="Cross-modal retrieval: text <-> image/video search, captions, VQA, zero-shot labels.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        **({} if docs else {"openapi_url": None, "docs_url": None, "redoc_url": None}),
    )
    app.state.settings = settings
    app.state.registry = registry
    for cls in (Exception, HTTPException, RequestValidationError, XModalError):
        app.add_exception_handler(cls, error_response)
    # outermost first: the host check, then the body limit, then timing
    app.add_middleware(ObserveMiddleware)
    app.add_middleware(BodyLimitMiddleware, limits=settings.limits, video_bytes=settings.video.max_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    query_auth = [Depends(require_api_key)]  # no-op unless XMODAL_API_KEYS is set
    for router in (search.router, video.router, generate.router, catalog.router, media.router, compat.router):
        app.include_router(router, dependencies=query_auth)
    app.include_router(catalog.health_router)
    app.include_router(catalog.metrics_router, dependencies=[] if docs else query_auth)
    app.include_router(admin.router)  # its own bearer token
    if (WEB_DIR / "index.html").is_file():
        app.mount("/", WebPage(app.router.routes, directory=WEB_DIR, html=True), name="web")

    def openapi() -> dict:  # FastAPI's document, with the limits Settings and the active model enforce
        if app.openapi_schema is None:
            document_limits(FastAPI.openapi(app), settings.limits, filter_json_schema())
        if registry.state is not None:
            document_model(app.openapi_schema, registry.state.model.embed_dim, settings.fetch.enabled)
        return app.openapi_schema

    app.openapi = openapi
    return app
