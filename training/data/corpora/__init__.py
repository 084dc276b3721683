"""The built-in real corpora, by name, and where their prepared manifests live.

    corpus_manifest("openclipart")  # -> XMODAL_HOME/corpora/openclipart/manifest.jsonl, or XModalError
    known_corpora()                 # -> ["easy-vqa", "fashion-mnist", "openclipart", "photos", "videos"]

Each corpus is a module in this package with `available() -> str | None` (why its source is missing)
and `prepare(out_dir, limit, workers) -> BuildReport`; modules are imported only when used.
"""

import importlib
from pathlib import Path

from training.data.manifest import MANIFEST
from training.errors import XModalError
from training.home import corpora_dir

# corpus name -> module under training.data.corpora
_CORPORA = {
    "openclipart": "openclipart",
    "fashion-mnist": "fashion_mnist",
    "easy-vqa": "easyvqa",
    "photos": "photos",
    "videos": "videos",
}


def known_corpora() -> list[str]:
    """Names of the built-in corpora, sorted."""
    return sorted(_CORPORA)


def corpus_module(name: str):
    """The module that prepares corpus `name`; an unknown name raises XModalError listing the known ones."""
    if name not in _CORPORA:
        raise XModalError(f"unknown corpus {name!r}; known: {', '.join(known_corpora())}")
    return importlib.import_module(f"{__name__}.{_CORPORA[name]}")


def corpus_dir(name: str) -> Path:
    """XMODAL_HOME/corpora/<name>: the manifest and media of a built-in or imported corpus."""
    return corpora_dir() / name


def corpus_manifest(name: str) -> Path:
    """The prepared manifest of corpus `name` (built-in or imported); XModalError when it is not there."""
    path = corpus_dir(name) / MANIFEST
    if not path.is_file():
        how = f"xmodal data prepare {name}" if name in _CORPORA else "xmodal data import DIR --name " + name
        raise XModalError(f"corpus {name!r} is not prepared; run `{how}`")
    return path
