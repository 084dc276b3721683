"""What the service is serving, and hot-swapping it.

A `ServingState` is an immutable pairing of one model with the indexes it embedded. Requests take
the current state for their whole life (`registry.acquire()`); a swap loads and warms the new model
or index version in a worker thread, checks that every index was embedded by the model it will
serve with, then replaces the state in one assignment. The old state's indexes are closed once its
last request finishes, so in-flight requests complete on what they started with.
"""

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app import metrics
from app.config import Settings
from training.errors import BrokenArtifactError, XModalError

log = logging.getLogger("xmodal.registry")


class IncompatibleIndexError(XModalError):
    """An index embedded by another model than the one it would serve with (HTTP 409)."""


class NotFoundError(XModalError):
    """An unknown index, item or model (HTTP 404)."""


class NotReadyError(XModalError):
    """No model or no index is loaded yet (HTTP 503)."""


@dataclass(eq=False)
class ServingState:
    model: Any  # training.model.XModalModel
    model_id: str
    model_dir: Path | None
    card: dict
    indexes: dict[str, Any]  # name -> index.search.LoadedIndex
    default_index: str | None
    _users: int = 0
    _retired: bool = False
    _banks: dict[str, tuple[list[str], torch.Tensor]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def index(self, name: str | None):
        """The named index (or the default); unknown names raise NotFoundError listing the loaded ones."""
        name = name or self.default_index
        if name is None:
            raise NotReadyError("no index is loaded; build one with `xmodal index build` and reload")
        if name not in self.indexes:
            known = ", ".join(sorted(self.indexes)) or "none"
            raise NotFoundError(f"index {name!r} not found; loaded: {known}")
        return self.indexes[name]

    def caption_bank(self, name: str | None) -> tuple[list[str], torch.Tensor]:
        """An index's distinct captions and their (N, D) text embeddings, computed once per state."""
        index = self.index(name)
        with self._lock:
            if index.name not in self._banks:
                texts = sorted({c for c in index.captions() if c})
                if not texts:
                    raise XModalError(f"index {index.name!r} has no captions; pass `texts` instead")
                emb = torch.cat(
                    [self.model.embed_texts(texts[i : i + 256]) for i in range(0, len(texts), 256)]
                )
                self._banks[index.name] = (texts, emb)
            return self._banks[index.name]


def _warm_banks(state: ServingState) -> None:
    """Embeds every index's caption bank in the background once a state is installed, so the first
    caption request does not wait for it (the demo's 7k captions: ~11 s on 2 cores); a request that
    comes sooner waits on the same lock, as it would without this."""
    for name in list(state.indexes):
        try:
            state.caption_bank(name)
        except Exception as e:  # noqa: BLE001 - an index without captions, or one a later swap closed
            log.debug("caption bank of %s not warmed: %s", name, e)


def check_serving_pair(model, index) -> None:
    """Raises IncompatibleIndexError unless `index` was embedded by `model` (same fingerprint)."""
    from index.search import check_compatible as index_check

    try:
        index_check(index, model)
    except XModalError as e:
        raise IncompatibleIndexError(f"{e} (version {index.version})") from None


class Registry:
    """Holds the current ServingState and swaps it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._state: ServingState | None = None
        self._users_lock = threading.Lock()
        self._holders: dict[int, int] = {}  # id(index) -> live states serving it; closed at 0
        self._swap_lock = asyncio.Lock()
        # what is not served because its files are broken: "index NAME" / "model REF" -> why (/readyz)
        self.broken: dict[str, str] = {}

    # -- reading -----------------------------------------------------------------------------------

    @property
    def state(self) -> ServingState | None:
        return self._state

    @contextmanager
    def acquire(self) -> Iterator[ServingState]:
        """The current state, kept open until the block ends (a swap meanwhile does not close it)."""
        state = self._state
        if state is None:
            raise NotReadyError("the service is still loading its model; retry shortly")
        with self._users_lock:
            state._users += 1
        try:
            yield state
        finally:
            with self._users_lock:
                state._users -= 1
                done = state._retired and state._users == 0
            if done:
                self._release(state)

    # -- loading -----------------------------------------------------------------------------------

    def default_model_ref(self) -> str:
        """XMODAL_MODEL, else the newest model dir under <home>/models."""
        if self.settings.model:
            return self.settings.model
        dirs = [p for p in self.settings.models_dir.glob("*") if (p / "config.json").is_file()]
        if not dirs:
            raise XModalError(
                f"no model: set XMODAL_MODEL or train one into {self.settings.models_dir} (`xmodal train`)"
            )
        return str(max(dirs, key=lambda p: (p / "config.json").stat().st_mtime))

    def _load_model(self, ref: str):
        """(model, id, saved dir or None, card) for any reference training.factory.load_model takes."""
        from training.devices import pick_device
        from training.factory import load_model, model_dir_of, read_card

        model = load_model(ref, device=pick_device(self.settings.device), models_dir=self.settings.models_dir)
        model.precision = self.settings.precision
        if self.settings.warmup:
            from PIL import Image

            from app.graphs import text_encoder
            from training.understand import prepare

            model.embed_texts(["warm up"])
            text_encoder(model)  # traced now, not on the first request
            model.embed_images([Image.new("RGB", (model.image_size, model.image_size))])
            prepare(model)  # the caption and VQA solvers' per-model prompts
        model_dir = model_dir_of(ref, self.settings.models_dir)
        if model_dir is not None:
            return model, model_dir.resolve().name, model_dir, read_card(model_dir)
        return model, ref, None, {"model": ref, "fingerprint": model.fingerprint}

    def _load_checked_model(self, ref: str):
        """_load_model, with a broken model dir (unreadable weights, or weights that no longer match
        the fingerprint in card.json) raised as BrokenArtifactError naming the file."""
        try:
            model, model_id, model_dir, card = self._load_model(ref)
        except XModalError:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors, torch and open_clip each raise their own
            from training.factory import model_dir_of

            weights = model_dir_of(ref, self.settings.models_dir)
            where = weights / "model.safetensors" if weights is not None else ref
            raise BrokenArtifactError(where, f"unreadable model ({type(e).__name__}: {e})"[:300]) from None
        recorded, fp = card.get("fingerprint"), getattr(model, "fingerprint", None)
        if model_dir is not None and recorded and fp and recorded != fp:
            raise BrokenArtifactError(
                model_dir / "model.safetensors", "does not match the fingerprint in card.json (corrupted?)"
            )
        return model, model_id, model_dir, card

    def _note_broken(self, what: str, e: BrokenArtifactError) -> None:
        log.error("not serving %s: %s", what, e)
        self.broken[what] = str(e)

    def _open_checked(self, model, name: str, version: str | None):
        from index.search import open_index

        index = open_index(name, version, self.settings.indexes_dir)
        try:
            check_serving_pair(model, index)
        except XModalError:
            index.close()
            raise
        return index

    def load_initial(self) -> ServingState | None:
        """Start-up: the configured model and indexes. Indexes named in XMODAL_INDEXES must load;
        discovered ones that another model embedded are skipped with a warning. A model or index whose
        files are broken is not served (logged, and named by /readyz); the rest is."""
        ref = self.default_model_ref()
        try:
            model, model_id, model_dir, card = self._load_checked_model(ref)
        except BrokenArtifactError as e:
            self._note_broken(f"model {ref}", e)  # up but not ready; an activate can still fix it
            return None
        indexes = {}
        for name in self._startup_index_names():
            try:
                indexes[name] = self._open_checked(model, name, None)
            except BrokenArtifactError as e:
                self._note_broken(f"index {name}", e)
            except XModalError as e:
                if self.settings.indexes is not None:
                    raise
                log.warning("skipping index %s: %s", name, e)
        default = self.settings.default_index or next(iter(indexes), None)
        if f"index {default}" in self.broken:
            default = next(iter(indexes), None)
        if default is not None and default not in indexes:
            raise XModalError(f"XMODAL_DEFAULT_INDEX={default!r} is not loaded; loaded: {', '.join(indexes)}")
        state = ServingState(model, model_id, model_dir, card, indexes, default)
        self._install(state)
        return state

    def _startup_index_names(self) -> list[str]:
        """XMODAL_INDEXES, else every published index."""
        if self.settings.indexes is not None:
            return list(self.settings.indexes)
        from index.search import list_indexes

        return [d["name"] for d in list_indexes(self.settings.indexes_dir)]

    # -- swapping ----------------------------------------------------------------------------------

    async def activate_model(self, ref: str, versions: dict[str, str] | None = None) -> ServingState:
        """Loads and warms model `ref` with every served index at `versions` (default: CURRENT),
        then switches. Any failure leaves the old state serving and raises XModalError."""
        async with self._swap_lock:
            try:
                state = await asyncio.to_thread(self._build_model_state, ref, versions or {})
            except Exception as e:
                metrics.SWAPS.labels("model", "failed").inc()
                if isinstance(e, BrokenArtifactError):
                    self._note_broken(f"model {ref}", e)
                raise
            self.broken = {k: v for k, v in self.broken.items() if not k.startswith("model ")}
            self._install(state)
            metrics.SWAPS.labels("model", "ok").inc()
            return state

    def _build_model_state(self, ref: str, versions: dict[str, str]) -> ServingState:
        old = self._state
        model, model_id, model_dir, card = self._load_checked_model(ref)
        names = list(old.indexes) if old else self._startup_index_names()
        unknown = set(versions) - set(names)
        names += sorted(unknown)
        opened: dict[str, Any] = {}
        try:
            for name in names:
                opened[name] = self._open_warm(model, name, versions.get(name))
        except Exception:
            for index in opened.values():
                index.close()
            raise
        default = old.default_index if old and old.default_index in opened else next(iter(opened), None)
        return ServingState(model, model_id, model_dir, card, opened, default)

    async def reload_index(self, name: str, version: str | None = None) -> ServingState:
        """Opens index `name` at `version` (default: CURRENT) for the active model and switches."""
        async with self._swap_lock:
            old = self._state
            if old is None:
                raise NotReadyError("the service is still loading its model; retry shortly")
            try:
                index = await asyncio.to_thread(self._open_warm, old.model, name, version)
            except Exception as e:
                metrics.SWAPS.labels("index", "failed").inc()
                if isinstance(e, BrokenArtifactError):  # refused; the old version keeps serving
                    self._note_broken(f"index {name}", e)
                raise
            self.broken.pop(f"index {name}", None)
            indexes = {**old.indexes, name: index}
            state = ServingState(
                old.model, old.model_id, old.model_dir, old.card, indexes, old.default_index or name
            )
            state._banks = {k: v for k, v in old._banks.items() if k != name}
            self._install(state)
            metrics.SWAPS.labels("index", "ok").inc()
            return state

    def _open_warm(self, model, name: str, version: str | None):
        import numpy as np

        index = self._open_checked(model, name, version)
        if self.settings.warmup and index.manifest.get("count", 1):
            index.search(np.zeros((1, model.embed_dim), dtype="float32"), 1, None, None)
        return index

    def _install(self, state: ServingState) -> None:
        if self.settings.warmup:
            threading.Thread(target=_warm_banks, args=(state,), name="caption-banks", daemon=True).start()
        with self._users_lock:
            for index in state.indexes.values():
                self._holders[id(index)] = self._holders.get(id(index), 0) + 1
        old, self._state = self._state, state  # the switch: one assignment
        metrics.INDEX_SIZE.clear()
        for index in state.indexes.values():
            metrics.INDEX_SIZE.labels(index.name, str(index.version)).set(index.manifest.get("count", 0))
        if old is not None:
            self._retire(old)

    def _retire(self, state: ServingState) -> None:
        """No new request gets `state`; it is released now if none uses it, else by its last request."""
        with self._users_lock:
            state._retired = True
            done = state._users == 0
        if done:
            self._release(state)

    def _release(self, old: ServingState) -> None:
        """A retired state's last request ended: closes its indexes that no live state holds."""
        with self._users_lock:
            unheld = []
            for index in old.indexes.values():
                self._holders[id(index)] -= 1
                if self._holders[id(index)] == 0:
                    del self._holders[id(index)]
                    unheld.append(index)
        for index in unheld:
            index.close()

    # -- watching ----------------------------------------------------------------------------------

    def published_version(self, name: str) -> str | None:
        from index.publish import current_version

        try:
            return current_version(name, self.settings.indexes_dir)
        except OSError:
            return None

    async def watch(self) -> None:
        """XMODAL_WATCH=1: reloads an index whose CURRENT names a new version (runs until cancelled)."""
        refused: set[tuple[str, str]] = set()  # logged once each
        while True:
            await asyncio.sleep(self.settings.watch_interval_s)
            state = self._state
            if state is None:
                continue
            for name, index in list(state.indexes.items()):
                version = self.published_version(name)
                if version is None or version == str(index.version) or (name, version) in refused:
                    continue
                try:
                    await self.reload_index(name, version)
                    log.info("watch: index %s now serves version %s", name, version)
                except Exception as e:  # noqa: BLE001 - keep serving the old version and say why
                    refused.add((name, version))
                    log.error("watch: index %s version %s not loaded: %s", name, version, e)

    def close(self) -> None:
        """Shutdown: retires the current state (its indexes close after its last request)."""
        state, self._state = self._state, None
        if state is not None:
            self._retire(state)
