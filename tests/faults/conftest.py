"""Fault tests reuse the service fixtures (tests/app/conftest.py) and the index helpers."""

from tests.app.conftest import home, home_template, media_dir, settings, tiny_model_b_dir  # noqa: F401
