"""Hot-swap (bearer XMODAL_ADMIN_TOKEN): activate a model, reload an index version."""

import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException

from app.deps import RegistryDep, check_text, require_admin
from app.registry import NotFoundError, ServingState
from app.schemas import ADMIN_RESPONSES, ActivateModelRequest, ReloadIndexRequest, SwapResponse

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ADMIN_RESPONSES
)


def _swap_response(state: ServingState, t0: float) -> SwapResponse:
    return SwapResponse(
        model=state.model_id,
        model_fingerprint=getattr(state.model, "fingerprint", None),
        indexes={n: str(i.version) for n, i in state.indexes.items()},
        took_ms=(time.perf_counter() - t0) * 1000,
    )


def _check_request(body: ActivateModelRequest, models_dir: Path, indexes_dir: Path) -> None:
    """A request may name a model id, a dir under <home>/models, a registry name or a hub/tag reference,
    and index names: never another path on the server's disk (403), nor an index path (422). A bare
    name that is none of those, or an index or version not published, answers 404 before any load."""
    from training.factory import (
        FORMS,
        HF_HUB_PREFIX,
        LOCAL_DIR_PREFIX,
        OPENCLIP_PREFIX,
        list_models,
        model_dir_of,
        reference_paths,
    )

    root = models_dir.resolve()
    paths = reference_paths(body.model)
    for path in paths:
        if not path.resolve().is_relative_to(root):
            raise HTTPException(
                403, f"model {body.model!r}: activation loads files under {models_dir} only; "
                "import it there with `xmodal model import`",
            )  # fmt: skip
    prefixed = body.model.startswith((OPENCLIP_PREFIX, HF_HUB_PREFIX, LOCAL_DIR_PREFIX))
    if not (prefixed or paths or model_dir_of(body.model, models_dir) or body.model in list_models()):
        raise NotFoundError(
            f"model {body.model!r} not found: no model dir of that id under XMODAL_HOME/models, and not a "
            f"registry name ({', '.join(list_models())}); or {FORMS}"
        )
    for name, version in (body.indexes or {}).items():
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise HTTPException(422, f"indexes: {name!r} is not an index name")
        _check_published(name, version, indexes_dir)


def _check_published(name: str, version: str | None, indexes_dir: Path) -> None:
    """404 for an index (or a version of it) that is not published under XMODAL_HOME/indexes."""
    from index.publish import versions

    have = versions(name, indexes_dir) if "/" not in name and not name.startswith(".") else []
    if not have:
        known = ", ".join(d.name for d in sorted(indexes_dir.glob("*")) if versions(d.name, indexes_dir))
        raise NotFoundError(f"index {name!r} not found; published: {known or 'none'}")
    if version is not None and version not in have:
        raise NotFoundError(f"index {name!r} has no version {version!r}; versions: {', '.join(have)}")


@router.post("/models/activate", response_model=SwapResponse)
async def activate_model(body: ActivateModelRequest, registry: RegistryDep) -> SwapResponse:
    """Loads, warms and switches to a model (with each index's CURRENT version unless given);
    on failure the old model keeps serving and the reason comes back."""
    t0 = time.perf_counter()
    check_text(body.model, registry.settings, "model")  # no lone surrogate reaches a path or a hub name
    _check_request(body, registry.settings.models_dir, registry.settings.indexes_dir)
    return _swap_response(await registry.activate_model(body.model, body.indexes), t0)


@router.post("/indexes/{name}/reload", response_model=SwapResponse)
async def reload_index(
    name: str, registry: RegistryDep, body: ReloadIndexRequest | None = None
) -> SwapResponse:
    """Loads an index version (default: CURRENT) for the active model and switches to it."""
    t0 = time.perf_counter()
    version = body.version if body else None
    _check_published(name, version, registry.settings.indexes_dir)
    return _swap_response(await registry.reload_index(name, version), t0)
