"""Fault tests reuse the service fixtures (tests/app/conftest.py) and the index helpers."""

import json
import os

import pytest

from tests.app.conftest import home, home_template, media_dir, settings, tiny_model_b_dir  # noqa: F401

# `make faults` sets XMODAL_FAULTS=full: the same tests at full size (>= 10 kills over >= 1,000 items,
# a real full tmpfs, a real server killed and hot-swapped under load). The test suite runs them small.
FULL = os.environ.get("XMODAL_FAULTS") == "full"


@pytest.fixture
def record_figures(request):
    """record_figures(**figures): appends {"test": ..., **figures} to $XMODAL_FAULTS_REPORT (JSON lines),
    which bench/faults.py turns into RELIABILITY.md's figures."""

    def record(**figures):
        path = os.environ.get("XMODAL_FAULTS_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"test": request.node.name, "full": FULL, **figures}) + "\n")

    return record
