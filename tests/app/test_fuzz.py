"""A short schemathesis run (bench/fuzz.py: every check, admin with the token) finds no failure, and
the mixed-route load generator (bench/load.py) drives every route. `make fuzz` runs the long one. Both
against the app under uvicorn in this process, on loopback."""

import pytest

pytest.importorskip("schemathesis")


def test_short_schemathesis_run_finds_no_failure_of_any_check(settings, tmp_path):
    from bench import fuzz
    from tests.app.conftest import ADMIN
    from tests.web.conftest import running_service

    settings.allowed_hosts = ["127.0.0.1"]
    with running_service(settings) as url:
        result = fuzz.run(url, max_time=25, max_examples=6, workdir=tmp_path, admin=ADMIN)
    assert result.cases > 0
    assert not result.failures, (result.failures, result.operations)


def test_mixed_load_generator_reports_every_route(settings):
    import asyncio

    from bench import load
    from tests.web.conftest import running_service

    settings.allowed_hosts = ["127.0.0.1"]
    with running_service(settings) as url:
        result = asyncio.run(load.mixed(url, 4, 40, 10, load.requests_by_route(2, 64)))
    routes = result["routes"]
    assert set(routes) == {"text search", "image search", "caption", "vqa", "classify"}
    assert sum(r["requests"] for r in routes.values()) == 40
    assert routes["text search"]["status"].get(200) and routes["image search"]["status"].get(200)
    assert all("conn" not in r["status"] and 500 not in r["status"] for r in routes.values())
