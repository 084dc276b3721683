"""A truncated or corrupted index or model file fails that one index or model with a clear message:
the rest keeps serving, /readyz names the broken file, and a reload or activation of it is refused
(4xx naming the file) while the old one keeps serving."""

import json
import shutil

import pytest

from tests.app.conftest import ADMIN, make_settings, publish_index, start

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # same length, bytes flipped near the end (the vectors / pages, not the header)
        cut = max(len(data) - 64, len(data) // 2)
        path.write_bytes(data[:cut] + bytes(b ^ 0xFF for b in data[cut:]))


def _search(c, index):
    return c.post("/v1/search/text", json={"query": "colour 1", "k": 3, "index": index})


@pytest.mark.parametrize("fname", ["index.faiss", "meta.sqlite", "vectors.npy"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_broken_index_file_fails_only_that_index(fname, how, settings, tiny_model_dir, media_dir):
    publish_index(tiny_model_dir, media_dir, settings.home, name="other")
    broken = settings.home / "indexes" / "demo" / "v0001" / fname
    _damage(broken, how)
    with start(settings) as c:
        ready = c.get("/readyz").json()
        assert ready["indexes"] == {"other": "v0001"}
        assert str(broken) in ready["broken"]["index demo"]
        assert _search(c, "other").status_code == 200
        r = _search(c, "demo")
        assert r.status_code == 404 and "loaded: other" in r.json()["detail"]


def test_a_broken_file_in_a_version_without_checksums_is_still_caught(settings, tiny_model_dir, media_dir):
    """Versions written before manifest.json recorded checksums: the readers' own errors are caught."""
    publish_index(tiny_model_dir, media_dir, settings.home, name="other")
    vdir = settings.home / "indexes" / "demo" / "v0001"
    manifest = json.loads((vdir / "manifest.json").read_text())
    del manifest["files"]
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    _damage(vdir / "index.faiss", "truncate")
    with start(settings) as c:
        assert str(vdir / "index.faiss") in c.get("/readyz").json()["broken"]["index demo"]
        assert _search(c, "other").status_code == 200


def test_reloading_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    settings, tiny_model_dir, media_dir
):
    with start(settings) as c:
        before = _search(c, "demo").json()["hits"]
        publish_index(tiny_model_dir, media_dir, settings.home)  # v0002
        broken = settings.home / "indexes" / "demo" / "v0002" / "vectors.npy"
        _damage(broken, "flip")
        r = c.post("/v1/admin/indexes/demo/reload", json={"version": "v0002"}, headers=AUTH)
        assert r.status_code == 422 and str(broken) in r.json()["detail"]
        assert c.get("/readyz").json()["indexes"] == {"demo": "v0001"}
        assert str(broken) in c.get("/readyz").json()["broken"]["index demo"]
        assert _search(c, "demo").json()["hits"] == before
        (settings.home / "indexes" / "demo" / "v0002").rename(settings.home / "indexes" / "demo" / "gone")
        publish_index(tiny_model_dir, media_dir, settings.home)  # a good v0003 clears the entry
        assert c.post("/v1/admin/indexes/demo/reload", json={}, headers=AUTH).status_code == 200
        assert c.get("/readyz").json()["broken"] == {}


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_broken_model_at_start_up_leaves_the_service_up_and_not_ready(how, home, tiny_model_dir, tmp_path):
    model = tmp_path / "models" / "broken"
    shutil.copytree(tiny_model_dir, model)
    _damage(model / "model.safetensors", how)
    shutil.copytree(tiny_model_dir, home / "models" / "good")  # activation loads from XMODAL_HOME/models
    with start(make_settings(home, model)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert str(model / "model.safetensors") in r.json()["broken"][f"model {model}"]
        ok = c.post("/v1/admin/models/activate", json={"model": "good"}, headers=AUTH)
        assert ok.status_code == 200, ok.text
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["indexes"] == {"demo": "v0001"} and r.json()["broken"] == {}


def test_activating_a_broken_model_is_refused_and_the_old_one_keeps_serving(
    settings, tiny_model_dir
):
    model = settings.home / "models" / "broken"
    shutil.copytree(tiny_model_dir, model)
    _damage(model / "model.safetensors", "truncate")
    with start(settings) as c:
        before = _search(c, "demo").json()["hits"]
        r = c.post("/v1/admin/models/activate", json={"model": str(model)}, headers=AUTH)
        assert r.status_code == 422 and str(model / "model.safetensors") in r.json()["detail"]
        assert c.get("/readyz").json()["model"] == tiny_model_dir.name
        assert _search(c, "demo").json()["hits"] == before
