"""Health, metrics, models/indexes listings, media by id (thumbnails, video Range), API keys, the web page."""

import io
import shutil

import pytest
from PIL import Image

from tests.app.conftest import start

CONTRACT_PATHS = [
    "/v1/search/text", "/v1/search/image", "/v1/search/image-to-text", "/v1/caption", "/v1/vqa",
    "/v1/classify", "/v1/embed/text", "/v1/embed/image", "/v1/models", "/v1/indexes",
    "/media/{index}/{item_id}", "/healthz", "/readyz", "/v1/admin/models/activate",
    "/v1/admin/indexes/{name}/reload", "/knn-service", "/metadata", "/indices-list",
]  # fmt: skip


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"ready": True, "model": "tiny-clip", "indexes": {"demo": "v0001"}, "broken": {}}
    client.post("/v1/search/text", json={"query": "cow"})
    text = client.get("/metrics").text
    names = ["xmodal_request_seconds_bucket", "xmodal_batch_size_bucket", "xmodal_queue_wait_seconds"]
    names += ["xmodal_forward_seconds", 'xmodal_index_items{index="demo",version="v0001"} 8.0']
    for name in names:
        assert name in text, name
    assert 'route="/v1/search/text"' in text


def test_models_and_indexes(settings, tiny_model_dir, tiny_model):
    shutil.copytree(tiny_model_dir, settings.models_dir / "m1")
    with start(settings) as c:
        models = c.get("/v1/models").json()
        assert (
            models["active"]["id"] == "tiny-clip"
            and models["active"]["fingerprint"] == tiny_model.fingerprint
        )
        assert [m["id"] for m in models["available"]] == ["m1"]
        assert models["available"][0]["fingerprint"] == tiny_model.fingerprint
        idx = c.get("/v1/indexes").json()
        assert idx["default"] == "demo"
        (demo,) = idx["indexes"]
        assert demo["name"] == "demo" and demo["count"] == 8 and demo["version"] == "v0001"
        assert demo["model_fingerprint"] == tiny_model.fingerprint


def test_media_file_and_thumbnail(client, media_dir):
    r = client.get("/media/demo/img1")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (media_dir / "img1.png").read_bytes()
    assert "sandbox" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    r = client.get("/media/demo/img1?thumb=1")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (40, 30)  # never upscaled


def test_video_range_and_poster_frames(client, media_dir):
    data = (media_dir / "vid0.mp4").read_bytes()
    r = client.get("/media/demo/vid0", headers={"Range": "bytes=10-109"})
    assert r.status_code == 206 and r.content == data[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(data)}"
    early = Image.open(io.BytesIO(client.get("/media/demo/vid0?thumb=1&t=0").content)).getpixel((16, 16))
    late = Image.open(io.BytesIO(client.get("/media/demo/vid0?thumb=1&t=1.75").content)).getpixel((16, 16))
    assert early[0] > early[2] and late[2] > late[0]  # the clip turns from red to blue


@pytest.mark.parametrize(
    "path", ["/media/demo/nope", "/media/other/img1", "/media/demo/..%2F..%2Fetc%2Fpasswd"]
)
def test_media_unknown_is_404(client, path):
    r = client.get(path)
    assert r.status_code == 404


def test_api_keys_guard_query_routes_only(settings):
    settings.api_keys = ["key-one", "key-two"]
    with start(settings) as c:
        assert c.post("/v1/search/text", json={"query": "cow"}).status_code == 401
        assert c.get("/v1/indexes").status_code == 401
        assert c.post("/knn-service", json={"text": "cow"}).status_code == 401
        ok = c.post("/v1/search/text", json={"query": "cow"}, headers={"Authorization": "Bearer key-two"})
        assert ok.status_code == 200
        assert c.get("/v1/indexes", headers={"X-API-Key": "key-one"}).status_code == 200
        assert c.get("/v1/indexes", headers={"X-API-Key": "key-three"}).status_code == 401
        assert c.get("/healthz").status_code == 200
        # with keys, metrics need one and the docs are off (XMODAL_PUBLIC_DOCS turns both back on)
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "key-one"}).status_code == 200
        assert c.get("/docs").status_code == c.get("/openapi.json").status_code == 404
    settings.public_docs = True
    with start(settings) as c:
        assert c.get("/metrics").status_code == c.get("/docs").status_code == 200


def test_openapi_documents_the_contract_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert set(CONTRACT_PATHS) <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["TextSearchRequest"]["examples"][0]["query"] == "a red bicycle"
    op = spec["paths"]["/v1/search/image"]["post"]
    assert list(op["requestBody"]["content"]) == ["multipart/form-data"]  # what the route parses
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"image", "k", "index", "media"} <= set(schemas[ref]["properties"])
    assert schemas[ref]["required"] == ["image"]
    limits = client.app.state.settings.limits  # the limits the service enforces, from its Settings
    k = schemas[ref]["properties"]["k"]["anyOf"]  # the bounded integer, or an empty part (the default)
    assert k == [
        {"type": "integer", "minimum": 1, "maximum": limits.max_k},
        {"type": "string", "maxLength": 0},
    ]
    text = schemas["TextSearchRequest"]["properties"]
    assert text["query"]["maxLength"] == limits.max_text_chars and text["query"]["minLength"] == 1
    assert text["where"]["anyOf"][0]["maxProperties"] == 16
    for status in ("400", "413", "415", "422", "503"):  # errors documented with their real body
        assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )


def _form(spec, path):
    body = spec["paths"][path]["post"]["requestBody"]
    ref = body["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    return body, spec["components"]["schemas"][ref]


def test_openapi_forms_of_caption_vqa_classify_and_the_video_routes(client):
    """FastAPI's own form schemas: caption and VQA take an image, a video or an indexed video's id (one
    of them), with their limits from Settings; classify's labels need two parts; responses are left as
    the models say."""
    import re

    spec = client.get("/openapi.json").json()
    limits = client.app.state.settings.limits
    for path in ("/v1/caption", "/v1/vqa"):
        body, form = _form(spec, path)
        assert body["required"] is True
        assert [branch["required"] for branch in form["anyOf"]] == [["image"], ["video"], ["id"]]
        assert form["properties"]["image"]["format"] == form["properties"]["video"]["format"] == "binary"
        encoding = body["content"]["multipart/form-data"]["encoding"]
        assert (
            "image/png" in encoding["image"]["contentType"]
            and "video/mp4" in encoding["video"]["contentType"]
        )
    _, caption = _form(spec, "/v1/caption")
    assert caption["properties"]["k"]["anyOf"][0]["maximum"] == limits.max_caption_k
    assert caption["properties"]["mode"]["anyOf"][0]["enum"] == ["auto", "generate", "retrieve"]
    _, vqa = _form(spec, "/v1/vqa")
    assert (
        vqa["required"] == ["question"]
        and vqa["properties"]["question"]["maxLength"] == limits.max_question_chars
    )
    _, classify = _form(spec, "/v1/classify")
    assert set(classify["required"]) == {"image", "labels"}
    labels = re.compile(classify["properties"]["labels"]["pattern"])
    assert all(labels.match(t) for t in ("cat, dog", "cat\ndog", " ,cat,,dog ,", "cat,cat"))
    assert not any(labels.match(t) for t in ("cat", "cat,", " , ", "cat,\x00dog"))
    assert spec["components"]["schemas"]["ClassifyResponse"]["properties"]["labels"]["type"] == "array"
    for path in ("/v1/search/video", "/v1/search/video-to-text", "/v1/embed/image"):
        _, form = _form(spec, path)
        assert {"video", "image"} & set(form["required"]), path
    responses = spec["paths"]["/v1/caption"]["post"]["responses"]["200"]["content"]["application/json"]
    assert {r["$ref"].rsplit("/", 1)[1] for r in responses["schema"]["anyOf"]} == {
        "CaptionResponse",
        "VideoCaptionResponse",
    }
    admin = spec["paths"]["/v1/admin/models/activate"]["post"]["responses"]
    assert admin["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_web_page_is_served_at_root(client):
    from app.main import WEB_DIR

    if not (WEB_DIR / "index.html").is_file():
        pytest.skip("app/web/index.html not present")
    r = client.get("/")
    assert r.status_code == 200 and r.text == (WEB_DIR / "index.html").read_text()


def test_serve_cli_builds_the_app_from_options(monkeypatch, home, tiny_model_dir):
    import uvicorn

    from app.serve import main
    from training.errors import XModalError

    monkeypatch.setenv("XMODAL_HOME", str(home))
    with pytest.raises(XModalError, match="'nope' not found"):
        main(["--model", str(tiny_model_dir), "--index", "nope"])
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    main(["--port", "8123", "--model", str(tiny_model_dir), "--index", "demo", "--no-batching"])
    settings = seen["app"].state.settings
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    assert settings.model == str(tiny_model_dir) and settings.indexes == ["demo"]
    assert settings.batch.enabled is False
    assert seen["app"].state.registry.state.indexes["demo"].version == "v0001"


def test_wrong_method_on_an_api_path_is_405_with_its_allow_header(client):
    r = client.options("/v1/search/text")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert client.get("/v1/search/text").status_code == 405  # not the file server's 404
    r = client.delete("/v1/indexes")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
