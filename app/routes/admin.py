"""Hot-swap (bearer XMODAL_ADMIN_TOKEN): activate a model, reload an index version."""

import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException

from app.deps import RegistryDep, require_admin
from app.registry import ServingState
from app.schemas import ActivateModelRequest, ReloadIndexRequest, SwapResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _swap_response(state: ServingState, t0: float) -> SwapResponse:
    return SwapResponse(
        model=state.model_id,
        model_fingerprint=getattr(state.model, "fingerprint", None),
        indexes={n: str(i.version) for n, i in state.indexes.items()},
        took_ms=(time.perf_counter() - t0) * 1000,
    )


def _check_request(body: ActivateModelRequest, models_dir: Path) -> None:
    """A request may name a model id, a dir under <home>/models, a registry name or a hub/tag reference,
    and index names: never another path on the server's disk (403), nor an index path (422)."""
    from training.factory import reference_paths

    root = models_dir.resolve()
    for path in reference_paths(body.model):
        if not path.resolve().is_relative_to(root):
            raise HTTPException(
                403, f"model {body.model!r}: activation loads files under {models_dir} only; "
                "import it there with `xmodal model import`",
            )  # fmt: skip
    for name in body.indexes or {}:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise HTTPException(422, f"indexes: {name!r} is not an index name")


@router.post("/models/activate", response_model=SwapResponse)
async def activate_model(body: ActivateModelRequest, registry: RegistryDep) -> SwapResponse:
    """Loads, warms and switches to a model (with each index's CURRENT version unless given);
    on failure the old model keeps serving and the reason comes back."""
    t0 = time.perf_counter()
    _check_request(body, registry.settings.models_dir)
    return _swap_response(await registry.activate_model(body.model, body.indexes), t0)


@router.post("/indexes/{name}/reload", response_model=SwapResponse)
async def reload_index(
    name: str, registry: RegistryDep, body: ReloadIndexRequest | None = None
) -> SwapResponse:
    """Loads an index version (default: CURRENT) for the active model and switches to it."""
    t0 = time.perf_counter()
    return _swap_response(await registry.reload_index(name, body.version if body else None), t0)
