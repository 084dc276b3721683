"""Admin auth and hot-swap: model activation, index reload, refusal of foreign indexes, the watcher."""

import json
import shutil
import time

from tests.app.conftest import ADMIN, publish_index, start, while_swapping

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _search_ids(c, query="a red square"):
    r = c.post("/v1/search/text", json={"query": query, "k": 7})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"]]


def _install(model_dir, home) -> str:
    """Activation loads only what is under <home>/models: a copy of `model_dir` there, by its id."""
    shutil.copytree(model_dir, home / "models" / model_dir.name, dirs_exist_ok=True)
    return model_dir.name


def test_admin_disabled_without_token_and_needs_the_right_one(settings):
    settings.admin_token = None
    with start(settings) as c:
        r = c.post("/v1/admin/indexes/demo/reload", headers=AUTH)
        assert r.status_code == 403 and "XMODAL_ADMIN_TOKEN" in r.json()["detail"]
    settings.admin_token = ADMIN
    with start(settings) as c:
        assert c.post("/v1/admin/indexes/demo/reload").status_code == 401
        bad = {"Authorization": "Bearer " + "x" * len(ADMIN)}
        assert c.post("/v1/admin/indexes/demo/reload", headers=bad).status_code == 401
        assert c.post("/v1/admin/indexes/demo/reload", headers=AUTH).status_code == 200


def test_model_with_foreign_index_is_refused_and_old_keeps_serving(settings, tiny_model_b_dir):
    with start(settings) as c:
        before = _search_ids(c)
        body = {"model": _install(tiny_model_b_dir, settings.home)}
        r = c.post("/v1/admin/models/activate", json=body, headers=AUTH)
        assert r.status_code == 409, r.text
        assert "demo" in r.json()["detail"] and "fingerprint" in r.json()["detail"]
        assert c.get("/v1/models").json()["active"]["id"] == "tiny-clip"
        assert _search_ids(c) == before


def test_missing_or_outside_model_is_refused_with_the_reason(settings, tiny_model_b_dir):
    with start(settings) as c:
        for bad in ("~c\ud91dp\x08", "tiny\x00clip"):  # found by the fuzz: a lone surrogate was a 500
            r = c.post("/v1/admin/models/activate", content=json.dumps({"model": bad}), headers={
                **AUTH, "content-type": "application/json"})  # fmt: skip
            assert r.status_code == 422 and "model" in r.json()["detail"], r.text
        r = c.post("/v1/admin/models/activate", json={"model": "no-such-model"}, headers=AUTH)
        assert r.status_code == 404 and "model 'no-such-model' not found" in r.json()["detail"]
        assert "tiny-clip" in r.json()["detail"]  # the registry names it could have been
        body = {"model": "tiny-clip", "indexes": {"nope": "v1"}}
        r = c.post("/v1/admin/models/activate", json=body, headers=AUTH)
        assert r.status_code == 404 and "index 'nope' not found; published: demo" in r.json()["detail"]
        r = c.post("/v1/admin/indexes/nope/reload", headers=AUTH)
        assert r.status_code == 404 and "nope" in r.json()["detail"]
        weights = tiny_model_b_dir / "open_clip_model.safetensors"
        outside = ("/nowhere/model", str(tiny_model_b_dir), f"local-dir:{tiny_model_b_dir}", "../models/x")
        for ref in (*outside, f"openclip:ViT-B-32@{weights}"):
            r = c.post("/v1/admin/models/activate", json={"model": ref}, headers=AUTH)
            assert r.status_code == 403 and "under" in r.json()["detail"], (ref, r.text)
        r = c.post(
            "/v1/admin/models/activate", json={"model": "tiny-clip", "indexes": {"../x": "v1"}}, headers=AUTH
        )
        assert r.status_code == 422 and "not an index name" in r.json()["detail"]
        assert c.get("/readyz").json()["model"] == "tiny-clip"


def test_activate_model_with_its_index_switches_both(settings, tiny_model_b_dir, media_dir):
    from training.factory import load_model

    with start(settings) as c:
        publish_index(tiny_model_b_dir, media_dir, settings.home)  # v0002 by model b, now CURRENT
        body = {"model": _install(tiny_model_b_dir, settings.home)}
        r = c.post("/v1/admin/models/activate", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "tiny-clip-b" and r.json()["indexes"] == {"demo": "v0002"}
        model_b = load_model(tiny_model_b_dir)
        assert r.json()["model_fingerprint"] == model_b.fingerprint
        vec = c.post("/v1/embed/text", json={"texts": ["cow"]}).json()["vectors"][0]
        assert vec == model_b.embed_texts(["cow"])[0].tolist()
        assert c.get("/v1/indexes").json()["indexes"][0]["version"] == "v0002"


def test_reload_index_version_and_bad_version(settings, tiny_model_dir, media_dir):
    with start(settings) as c:
        publish_index(tiny_model_dir, media_dir, settings.home)  # v0002, same model
        r = c.post("/v1/admin/indexes/demo/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["indexes"] == {"demo": "v0002"}
        r = c.post("/v1/admin/indexes/demo/reload", json={"version": "v0001"}, headers=AUTH)
        assert r.json()["indexes"] == {"demo": "v0001"}
        r = c.post("/v1/admin/indexes/demo/reload", json={"version": "v0099"}, headers=AUTH)
        assert r.status_code == 404 and "v0099" in r.json()["detail"]
        assert c.post("/v1/search/text", json={"query": "x"}).json()["version"] == "v0001"


def test_no_request_fails_across_hot_swaps(settings, tiny_model_dir, tiny_model_b_dir, media_dir):
    publish_index(tiny_model_b_dir, media_dir, settings.home)  # v0002 by b
    publish_index(tiny_model_dir, media_dir, settings.home)  # v0003 by a (CURRENT)
    image = (media_dir / "img1.png").read_bytes()
    with start(settings) as c:

        def request(i, n):
            if i % 2:
                return c.post("/v1/search/text", json={"query": f"query {n}", "k": 3})
            return c.post("/v1/search/image", files={"image": ("x.png", image)})

        codes, swaps = while_swapping(c, request, [
            ("/v1/admin/models/activate",
             {"model": _install(tiny_model_b_dir, settings.home), "indexes": {"demo": "v0002"}}),
            ("/v1/admin/models/activate", {"model": _install(tiny_model_dir, settings.home)}),
            ("/v1/admin/indexes/demo/reload", {"version": "v0001"}),
        ])  # fmt: skip
        assert [s.status_code for s in swaps] == [200, 200, 200], [s.text for s in swaps]
        assert len(codes) == 100 and set(codes) == {200}


def test_watch_reloads_a_newly_published_version(settings, tiny_model_dir, tiny_model_b_dir, media_dir):
    settings.watch, settings.watch_interval_s = True, 0.05
    with start(settings) as c:
        publish_index(tiny_model_b_dir, media_dir, settings.home)  # v0002 by another model: refused
        publish_index(tiny_model_dir, media_dir, settings.home)  # v0003: picked up
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["indexes"]["demo"] != "v0003" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/readyz").json()["indexes"] == {"demo": "v0003"}


def test_old_index_closes_only_after_its_last_request(settings, tiny_model_dir, media_dir):
    import asyncio

    import numpy as np

    from app.registry import Registry

    registry = Registry(settings)
    registry.load_initial()
    publish_index(tiny_model_dir, media_dir, settings.home)  # v0002
    with registry.acquire() as in_flight:
        old = in_flight.indexes["demo"]
        asyncio.run(registry.reload_index("demo"))
        assert registry.state.indexes["demo"].version == "v0002"
        assert len(old.search(np.ones((1, 32), "float32") / 32**0.5, 3)[0]) == 3  # still open
    assert old._index is None  # closed when the request that held it ended
    assert registry.state.indexes["demo"]._index is not None
    registry.close()
