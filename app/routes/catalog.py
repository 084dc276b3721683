"""What is served (models, indexes) and whether the service is up (health, readiness, metrics)."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import RegistryDep, ServingDep, SettingsDep
from app.schemas import IndexesResponse, IndexInfo, ModelsResponse
from training.factory import read_card

router = APIRouter(tags=["catalog"])
health_router = APIRouter(tags=["health"])  # no API key: probes
metrics_router = APIRouter(tags=["health"])  # behind a key when XMODAL_API_KEYS is set (XMODAL_PUBLIC_DOCS)


@router.get("/v1/models", response_model=ModelsResponse)
def models(state: ServingDep, settings: SettingsDep) -> ModelsResponse:
    """The active model's card and every model dir under <home>/models."""
    available = [
        {"id": p.name, **read_card(p)}
        for p in sorted(settings.models_dir.glob("*"))
        if (p / "config.json").is_file()
    ]
    active = {**state.card, "id": state.model_id, "fingerprint": getattr(state.model, "fingerprint", None),
              "embed_dim": state.model.embed_dim}  # fmt: skip
    return ModelsResponse(active=active, available=available)


def index_info(index) -> IndexInfo:
    m = index.manifest
    media = m.get("media") if isinstance(m.get("media"), dict) else {}
    return IndexInfo(
        name=index.name, version=str(index.version), count=int(m.get("count", 0)),
        model_fingerprint=m.get("model_fingerprint"), media={k: int(v) for k, v in media.items()},
    )  # fmt: skip


@router.get("/v1/indexes", response_model=IndexesResponse)
async def indexes(state: ServingDep) -> IndexesResponse:
    """Loaded indexes with their versions, sizes and the model that embedded them."""
    return IndexesResponse(
        indexes=[index_info(i) for _, i in sorted(state.indexes.items())], default=state.default_index
    )


@health_router.get("/healthz")
async def healthz() -> dict:
    """Alive (the process answers)."""
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(registry: RegistryDep, response: Response) -> dict:
    """Ready when a model and at least one index are loaded; 503 otherwise. `broken` names each model
    or index not served because a file of it is missing, truncated or corrupted."""
    state = registry.state
    ready = state is not None and bool(state.indexes)
    if not ready:
        response.status_code = 503
    return {
        "ready": ready,
        "model": state.model_id if state else None,
        "indexes": {n: str(i.version) for n, i in state.indexes.items()} if state else {},
        "broken": dict(registry.broken),
    }


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
