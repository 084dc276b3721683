"""clip-retrieval protocol: the request clip_retrieval.ClipClient sends, the response shape it reads."""

import base64
import json

import pytest
import torch

from app.schemas import KNN_QUERIES
from tests.app.conftest import start


def clip_client_body(**query):
    """The body ClipClient.__search_knn_api__ posts (clip_retrieval/clip_client.py), as a JSON string."""
    body = {
        "text": None, "image": None, "image_url": None, "embedding_input": None,
        "deduplicate": True, "use_safety_model": True, "use_violence_detector": True,
        "indice_name": "demo", "use_mclip": False, "aesthetic_score": 9, "aesthetic_weight": 0.5,
        "modality": "image", "num_images": 5, "num_result_ids": 5,
    }  # fmt: skip
    return json.dumps({**body, **query})


def knn(client, content_type=None, **query):
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/knn-service", content=clip_client_body(**query), headers=headers)


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_text_query_whatever_the_content_type(client, content_type):
    r = knn(client, content_type, text="a red square", deduplicate=True)
    assert r.status_code == 200, r.text
    ours = client.post("/v1/search/text", json={"query": "a red square", "k": 5}).json()["hits"]
    assert not {"img0", "img0-copy"} <= {h["id"] for h in ours}  # /v1 search leaves out twins
    results = r.json()
    assert [x["id"] for x in results] == [h["id"] for h in ours]
    assert [x["similarity"] for x in results] == pytest.approx([h["score"] for h in ours], abs=1e-6)
    assert all(x["url"] == "http://testserver" + h["url"] for x, h in zip(results, ours, strict=True))
    assert all(x["caption"] == h["caption"] for x, h in zip(results, ours, strict=True))


def test_deduplicate_drops_identical_items(client):
    full = knn(client, image=_b64(client, 0), deduplicate=False, num_images=9).json()
    dedup = knn(client, image=_b64(client, 0), deduplicate=True, num_images=9).json()
    assert {full[0]["id"], full[1]["id"]} == {"img0", "img0-copy"}
    assert [x["id"] for x in dedup] == [x["id"] for x in full if x["id"] != full[1]["id"]]


def _b64(client, i):
    """An indexed image's bytes, base64 (what ClipClient sends for a local file)."""
    path = client.app.state.registry.state.indexes["demo"].get(f"img{i}").path
    return base64.b64encode(open(path, "rb").read()).decode()


def test_image_and_embedding_queries(client, tiny_model):
    r = knn(client, image=_b64(client, 3), deduplicate=False)
    assert r.status_code == 200 and r.json()[0]["id"] == "img3"
    assert r.json()[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    vec = tiny_model.embed_texts(["a cow"])[0] * 3.0  # any scale: the service normalises it
    by_vec = knn(client, embedding_input=vec.tolist(), deduplicate=False).json()
    by_text = knn(client, text="a cow", deduplicate=False).json()
    assert [x["id"] for x in by_vec] == [x["id"] for x in by_text]


def test_text_modality_ranks_captions(client, tiny_model):
    r = knn(client, text="colour", modality="text", num_images=3)
    assert r.status_code == 200, r.text
    bank = sorted(
        {"colour 0", "colour 1", "colour 2", "colour 3", "colour 4", "colour 5", "a red then blue clip"}
    )
    scores = tiny_model.embed_texts(bank) @ tiny_model.embed_texts(["colour"])[0]
    want = [bank[i] for i in torch.argsort(scores, descending=True)[:3].tolist()]
    assert [x["caption"] for x in r.json()] == want


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({}, 422, ["exactly one of text, image"]),
        ({"text": "a", "image": "aGk="}, 422, ["exactly one", "text, image"]),
        ({"text": "a", "num_images": 1000}, 422, ["num_images", "100"]),
        ({"text": "a", "modality": "audio"}, 422, ["modality"]),
        ({"text": "a", "indice_name": "laion5B"}, 404, ["laion5B", "demo"]),
        ({"embedding_input": [1.0, 2.0]}, 422, ["embedding_input", "32"]),
        ({"image": "%%%"}, 422, ["image", "base64"]),
        ({"image_url": "http://example.com/cat.jpg"}, 400, ["image_url", "XMODAL_FETCH__ENABLED"]),
        ({"text": "a", "num_result_ids": True}, 422, ["num_result_ids", "valid integer"]),
        ({"text": "a", "num_images": "5"}, 422, ["num_images", "valid integer"]),
        ({"text": "a", "num_result_ids": ""}, 422, ["num_result_ids", "valid integer"]),
        ({"text": "a", "num_result_ids": 1.5e57}, 422, ["num_result_ids", "valid integer"]),
        ({"embedding_input": [True, False] * 16}, 422, ["embedding_input.0", "valid number"]),
        ({"embedding_input": [[1.0] * 32]}, 422, ["embedding_input.0", "valid number"]),
        ({"text": "a", "deduplicate": "yes"}, 422, ["deduplicate", "valid boolean"]),
        ({"embedding_input": [0.0] * 32}, 422, ["embedding_input", "not all zero"]),
    ],
)
def test_knn_errors_name_the_field(client, query, status, words):
    r = knn(client, **query)
    assert r.status_code == status, r.text
    assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


def test_knn_bad_json_is_400(client):
    r = client.post(
        "/knn-service", content=b"text=cow", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


def test_image_url_allow_list(settings):
    settings.fetch.enabled, settings.fetch.allow_hosts = True, ["images.internal"]
    with start(settings) as c:
        r = knn(c, image_url="http://169.254.169.254/latest/meta-data")
        assert r.status_code == 400 and "allow-list" in r.json()["detail"]
        r = knn(c, image_url="file:///etc/passwd")
        assert r.status_code == 400 and "allow-list" in r.json()["detail"]


def test_metadata_and_indices_list(client):
    r = client.post("/metadata", content=json.dumps({"ids": ["img1", "nope"], "indice_name": "demo"}))
    assert r.status_code == 200, r.text
    first, missing = r.json()
    assert first["id"] == "img1" and first["metadata"]["caption"] == "colour 1"
    assert (
        first["metadata"]["url"] == "http://testserver/media/demo/img1"
        and first["metadata"]["split"] == "test"
    )
    assert missing == {"id": "nope", "metadata": None}
    assert client.get("/indices-list").json() == ["demo"]
    r = client.post("/metadata", content=json.dumps({"ids": "img1"}))
    assert r.status_code == 422 and "ids" in r.json()["detail"]


def test_knn_schema_says_what_the_service_takes(client):
    """Exactly one query field (null, and "" for a string or [] for embedding_input, count as absent),
    embedding_input of the active model's dimension, image_url only when fetching is on: what the schema
    admits is answered 200, and a query field of the wrong type is refused, not taken as absent."""
    body = client.get("/openapi.json").json()["paths"]["/knn-service"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert [v["required"] for v in schema["oneOf"]] == [[f] for f in KNN_QUERIES]
    array = next(v for v in schema["properties"]["embedding_input"]["anyOf"] if v.get("type") == "array")
    assert array["minItems"] == array["maxItems"] == 32
    assert schema["properties"]["image_url"]["enum"] == [None, ""]
    assert schema["properties"]["num_images"]["maximum"] == 100
    assert knn(client, text="a red square", embedding_input=[], image="", image_url=None).status_code == 200
    assert len(knn(client, text="a red square", num_images=3.0).json()) == 3  # JSON Schema: 3.0 is an integer
    for wrong in ({"image_url": []}, {"image": []}, {"embedding_input": ""}, {"text": []}):
        query = {"text": "a red square"} if "text" not in wrong else {"embedding_input": [1.0] * 32}
        r = knn(client, **query, **wrong)
        assert r.status_code == 422 and r.json()["detail"].startswith(f"{next(iter(wrong))}: "), r.text
    huge = knn(client, embedding_input=[1e200] * 16 + [-1e-300] * 16)  # a direction, however scaled
    assert huge.status_code == 200 and huge.json(), huge.text
