"""Frozen-tower feature cache: locked towers' outputs are computed once and reused across runs.

    store = FeatureStore(model)                  # needs model.image_locked / text_locked
    store.prepare(pairs)                         # embeds what is missing, with a progress bar
    store.images(["openclipart/cow", ...])       # -> (B, F) image_tower outputs
    store.texts(["a cow", ...])                  # -> (B, F) text_tower outputs

Image features live in XMODAL_HOME/cache/features/image-<tower digest>-<corpus>.safetensors, one file
per corpus (the part of a key before its first "/"); the digest covers the tower's weights and input
size, so a different model or image size never reads stale features. Text features go to
text-<digest>.safetensors. Keys and texts are kept in the file's metadata, in row order.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from training.atomic import atomic_path
from training.home import xmodal_home
from training.model import XModalModel
from training.tasks import Pair, load_rgb


def cache_dir() -> Path:
    return xmodal_home() / "cache" / "features"


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        return {}
    with safe_open(str(path), framework="pt") as f:
        keys = json.loads(f.metadata()["keys"])
        rows = f.get_tensor("features")
    return dict(zip(keys, rows, strict=True))


def _write(path: Path, table: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        features = {"features": torch.stack(list(table.values()))}
        save_file(features, str(tmp), metadata={"keys": json.dumps(list(table))})


class FeatureStore:
    """In-memory tables of locked-tower outputs, backed by safetensors files; see the module docstring."""

    def __init__(self, model: XModalModel, batch_size: int = 64, directory: Path | None = None):
        self.model = model
        self.batch_size = batch_size
        self.dir = directory or cache_dir()
        self.image_digest = model.tower_digest("image")
        self.text_digest = model.tower_digest("text")
        self._images: dict[str, torch.Tensor] = {}
        self._texts: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def prepare_images(self, keyed_images: dict[str, object]) -> None:
        """Ensures features for every key; `keyed_images` maps "<corpus>/<id>" to a path or PIL image."""
        by_corpus = defaultdict(dict)
        for key, image in keyed_images.items():
            by_corpus[key.split("/", 1)[0]][key] = image
        for corpus, items in by_corpus.items():
            path = self.dir / f"image-{self.image_digest}-{corpus}.safetensors"
            table = _read(path)
            todo = [k for k in items if k not in table]
            if todo:
                was_training = self.model.training
                self.model.eval()
                bar = tqdm(total=len(todo), desc=f"image features {corpus}", unit="img")
                for i in range(0, len(todo), self.batch_size):
                    chunk = todo[i : i + self.batch_size]
                    pix = torch.stack([self.model.preprocess(load_rgb(items[k])) for k in chunk])
                    out = self.model.image_tower(pix.to(self.model.device)).float().cpu()
                    table.update(zip(chunk, out, strict=True))
                    bar.update(len(chunk))
                    if (i // self.batch_size) % 8 == 7:  # a killed run keeps most of its work
                        _write(path, table)
                bar.close()
                self.model.train(was_training)
                _write(path, table)
            self._images.update({k: table[k] for k in items})

    @torch.no_grad()
    def prepare_texts(self, texts: Iterable[str]) -> None:
        """Ensures features for every distinct text."""
        path = self.dir / f"text-{self.text_digest}.safetensors"
        if not self._texts:
            self._texts = _read(path)
        todo = sorted({t for t in texts if t not in self._texts})
        if not todo:
            return
        was_training = self.model.training
        self.model.eval()
        for i in tqdm(range(0, len(todo), 256), desc="text features", unit="batch"):
            chunk = todo[i : i + 256]
            tokens = {k: v.to(self.model.device) for k, v in self.model.tokenize(chunk).items()}
            self._texts.update(zip(chunk, self.model.text_tower(tokens).float().cpu(), strict=True))
        self.model.train(was_training)
        _write(path, self._texts)

    def prepare(self, pairs: list[Pair]) -> None:
        self.prepare_images({p.key: p.image for p in pairs})
        self.prepare_texts(c for p in pairs for c in p.captions)

    def images(self, keys: list[str]) -> torch.Tensor:
        return torch.stack([self._images[k] for k in keys])

    def texts(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._texts[t] for t in texts])
