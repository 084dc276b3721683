"""Where xmodal keeps its artifacts: corpora, models and indexes under XMODAL_HOME (default ./var)."""

import os
from pathlib import Path


def xmodal_home() -> Path:
    return Path(os.environ.get("XMODAL_HOME", "var"))


def corpora_dir() -> Path:
    return xmodal_home() / "corpora"


def models_dir() -> Path:
    return xmodal_home() / "models"


def indexes_dir() -> Path:
    return xmodal_home() / "indexes"
