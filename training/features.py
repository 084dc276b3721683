"""Frozen-tower cache: a frozen tower's outputs are computed once and reused, across runs where the model
can name its towers' weights (`tower_digest`).

    store = FeatureStore(model)
    store.prepare(pairs)                              # pooled features of contrastive pairs' images, captions
    store.prepare_images(keyed_images, tokens=False)  # embeds what is missing, with a progress bar
    store.prepare_texts(texts, tokens=False)
    store.images(["openclipart/cow", ...])            # -> (B, F) image_tower outputs, prepared before
    store.texts(["a cow", ...])                       # -> (B, F) text_tower outputs, prepared before
    store.image_tokens(keys, images)                  # -> (B, N, Ci) image_tokens outputs (heads' inputs)
    store.text_tokens(questions)                      # -> ((B, L, Ct), mask (B, L)) text_tokens outputs

Four kinds of rows, each a safetensors file under XMODAL_HOME/cache/features:

    image-<digest>-<corpus>.safetensors          (F,) float32 per image key
    image-tokens-<digest>-<corpus>.safetensors   (N, Ci) float16 per image key
    text-<digest>.safetensors                    (F,) float32 per text
    text-tokens-<digest>.safetensors             (n, Ct) float16 per text: its n real tokens, re-padded
                                                 per batch (rows padded in the file, lengths in metadata)

Image keys are "<corpus>/<id>", one file per corpus; the digest covers the tower's weights and input size,
so a different model or image size never reads stale rows. Keys are kept in the file's metadata, in row
order. Files are written atomically, every 8 batches as well, so a killed run keeps most of its work.
Models without `tower_digest` (open_clip, transformers) keep their rows in memory only. Tokens are stored
as float16: half the memory and disk, and the heads' loss moves by less than 2e-3.

`images` / `texts` serve prepared rows; callers use them only for locked towers. `image_tokens` /
`text_tokens` serve cached rows only while the tower is frozen (it is locked, nothing outside
`model.heads` trains, or the store was made `frozen=True` for an evaluation), computing and keeping those
not prepared in memory; otherwise they run the tower with grad.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from training.atomic import atomic_path
from training.home import xmodal_home
from training.model import XModalModel
from training.tasks import Pair, load_rgb

TEXT_BATCH = 256


def cache_dir() -> Path:
    return xmodal_home() / "cache" / "features"


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        return {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        rows = f.get_tensor("features")
    if "lengths" in meta:
        rows = [r[:n] for r, n in zip(rows, json.loads(meta["lengths"]), strict=True)]
    return dict(zip(json.loads(meta["keys"]), rows, strict=True))


def _write(path: Path, table: dict[str, torch.Tensor]) -> None:
    rows = list(table.values())
    meta = {"keys": json.dumps(list(table))}
    if any(r.shape != rows[0].shape for r in rows):  # text tokens: rows of different lengths
        meta["lengths"] = json.dumps([len(r) for r in rows])
        features = pad_sequence(rows, batch_first=True)
    else:
        features = torch.stack(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"features": features}, str(tmp), metadata=meta)


def encoder_frozen(model: XModalModel) -> bool:
    """True when nothing outside the heads trains, so the towers' token outputs can be cached."""
    return not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("heads."))


class FeatureStore:
    """In-memory tables of frozen-tower outputs, backed by safetensors files; see the module docstring."""

    def __init__(
        self, model: XModalModel, batch_size: int = 64, directory: Path | None = None, frozen: bool = False
    ):
        self.model = model
        self.batch_size = batch_size  # images per tower call
        self.dir = directory or cache_dir()
        self.frozen = frozen  # the towers do not change while this store lives (evaluation)
        self._digests: dict[str, str | None] = {}
        self._tables: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)  # kind -> key -> row

    # --- filling -----------------------------------------------------------------------------------

    def prepare_images(self, keyed_images: dict[str, object], tokens: bool = False) -> None:
        """Ensures rows for every key; `keyed_images` maps "<corpus>/<id>" to a path or PIL image."""
        self._prepare("image-tokens" if tokens else "image", keyed_images)

    def prepare_texts(self, texts: Iterable[str], tokens: bool = False) -> None:
        """Ensures rows for every distinct text."""
        self._prepare("text-tokens" if tokens else "text", {t: t for t in texts})

    def prepare(self, pairs: list[Pair]) -> None:
        self.prepare_images({p.key: p.image for p in pairs})
        self.prepare_texts(c for p in pairs for c in p.captions)

    def _path(self, kind: str, corpus: str | None) -> Path | None:
        which = kind.split("-")[0]  # "image" or "text"
        if which not in self._digests:
            digest = getattr(self.model, "tower_digest", None)
            self._digests[which] = digest(which) if digest else None
        if self._digests[which] is None:
            return None
        return self.dir / ("-".join(filter(None, [kind, self._digests[which], corpus])) + ".safetensors")

    @torch.no_grad()
    def _prepare(self, kind: str, inputs: dict[str, object], lazy: bool = False) -> None:
        """Computes the rows of `kind` missing from memory; unless `lazy`, reads and extends the files."""
        images = kind.startswith("image")
        table = self._tables[kind]
        groups = defaultdict(dict)  # corpus (images) or None (texts) -> missing key -> input
        for key, x in inputs.items():
            if key not in table:
                groups[key.split("/", 1)[0] if images else None][key] = x
        chunk_size = self.batch_size if images else TEXT_BATCH
        for corpus, items in groups.items():
            path = None if lazy else self._path(kind, corpus)
            rows = _read(path) if path else {}
            todo = [k for k in items if k not in rows]
            was_training = self.model.training
            self.model.eval()  # cached rows must not depend on dropout
            desc, unit = f"{kind} {corpus or ''}".strip(), "img" if images else "text"
            bar = tqdm(total=len(todo), desc=desc, unit=unit, disable=lazy or not todo)
            for n, i in enumerate(range(0, len(todo), chunk_size)):
                chunk = todo[i : i + chunk_size]
                rows.update(zip(chunk, self._compute(kind, [items[k] for k in chunk]), strict=True))
                bar.update(len(chunk))
                if path and n % 8 == 7:  # a killed run keeps most of its work
                    _write(path, rows)
            bar.close()
            self.model.train(was_training)
            if path and todo:
                _write(path, rows)
            table.update({k: rows[k] for k in items})

    def _compute(self, kind: str, inputs: list) -> list[torch.Tensor]:
        m = self.model
        if kind.startswith("image"):
            pix = torch.stack([m.preprocess(load_rgb(x)) for x in inputs]).to(m.device)
            if kind == "image":
                return list(m.image_tower(pix).float().cpu())
            return list(m.image_tokens(pix).half().cpu())  # (N, Ci) each
        tokens = {k: v.to(m.device) for k, v in m.tokenize(inputs).items()}
        if kind == "text":
            return list(m.text_tower(tokens).float().cpu())
        x, mask = m.text_tokens(tokens)
        return [xi[mi].half().cpu() for xi, mi in zip(x, mask, strict=True)]  # real tokens only

    # --- lookups -----------------------------------------------------------------------------------

    def images(self, keys: list[str]) -> torch.Tensor:
        return torch.stack([self._tables["image"][k] for k in keys])

    def texts(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._tables["text"][t] for t in texts])

    def _cached(self, which: str) -> bool:
        return self.frozen or getattr(self.model, f"{which}_locked") or encoder_frozen(self.model)

    def image_tokens(self, keys: list[str], images: list) -> torch.Tensor:
        """(B, N, Ci) tokens of the batch's images on the model's device; with grad unless frozen."""
        m = self.model
        if not self._cached("image"):
            return m.image_tokens(torch.stack([m.preprocess(load_rgb(im)) for im in images]).to(m.device))
        self._prepare("image-tokens", dict(zip(keys, images, strict=True)), lazy=True)
        return torch.stack([self._tables["image-tokens"][k] for k in keys]).to(m.device).float()

    def text_tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, L, Ct), mask (B, L)) for the batch's texts on the model's device; with grad unless frozen."""
        m = self.model
        if not self._cached("text"):
            return m.text_tokens({k: v.to(m.device) for k, v in m.tokenize(texts).items()})
        self._prepare("text-tokens", {t: t for t in texts}, lazy=True)
        rows = [self._tables["text-tokens"][t] for t in texts]
        x = pad_sequence(rows, batch_first=True).to(m.device).float()
        lengths = torch.tensor([len(r) for r in rows], device=m.device)
        return x, torch.arange(x.shape[1], device=m.device) < lengths[:, None]
