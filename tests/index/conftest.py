"""Fixtures for index tests: tiny image and mixed (images, videos, broken files) corpora."""

from pathlib import Path

import pytest

from tests.index.helpers import write_corpus


@pytest.fixture
def image_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "images", 23)


@pytest.fixture
def mixed_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "mixed", 10, n_videos=2, broken=True)
