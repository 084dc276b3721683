"""/v1/search/*: results against a brute-force reference, filters, and every input limit."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import png_bytes, start


def _reference(settings, query_vec, media=None, keep=lambda item: True):
    """Item ids by best-row cosine score, from the index's stored vectors and store rows, without twins
    (an item whose score and caption repeat an earlier item's: img0-copy)."""
    from index.search import open_index

    idx = open_index("demo", root=settings.indexes_dir)
    vecs = np.load(idx.path / "vectors.npy")
    rows = idx._store.all_rows()
    best: dict[str, float] = {}
    caption = {}
    for r, s in zip(rows, vecs @ query_vec, strict=True):
        if (media is None or r.media == media) and keep(r):
            best[r.item_id] = max(best.get(r.item_id, -9.0), float(s))
            caption[r.item_id] = r.captions[0] if r.captions else None
    idx.close()
    ranked, seen = [], set()
    for item, score in sorted(best.items(), key=lambda kv: -kv[1]):
        if (round(score, 5), caption[item]) not in seen:
            seen.add((round(score, 5), caption[item]))
            ranked.append((item, score))
    return ranked


def assert_same_ranking(hits, ref):
    """Same scores in order; ids equal up to the order of exact ties (img0 or img0-copy, whichever the
    index met first)."""
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in ref], rtol=1e-4, atol=1e-5)

    def groups(pairs):
        out: dict[float, set] = {}
        for item, score in pairs:
            out.setdefault(round(score, 4), set()).add(item)
        return out

    assert groups((h["id"], h["score"]) for h in hits) == groups(ref)


def test_text_search_matches_brute_force(client, tiny_model):
    r = client.post("/v1/search/text", json={"query": "a red square", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    ref = _reference(client.settings, tiny_model.embed_texts(["a red square"])[0].numpy())[:5]
    assert_same_ranking(body["hits"], ref)
    assert body["index"] == "demo" and body["version"] == "v0001" and body["took_ms"] > 0
    hit = body["hits"][0]
    assert hit["url"] == f"/media/demo/{hit['id']}" and hit["thumbnail_url"].startswith(
        hit["url"] + "?thumb=1"
    )


def test_media_and_where_filters(client, tiny_model):
    q = tiny_model.embed_texts(["something"])[0].numpy()
    videos = client.post("/v1/search/text", json={"query": "something", "k": 5, "media": "video"}).json()
    assert [h["id"] for h in videos["hits"]] == ["vid0"]
    assert videos["hits"][0]["media"] == "video" and videos["hits"][0]["start"] in (0.0, 1.0)
    r = client.post("/v1/search/text", json={"query": "something", "k": 10, "where": {"split": "train"}})
    ref = _reference(client.settings, q, keep=lambda row: row.meta.get("split") == "train")
    assert_same_ranking(r.json()["hits"], ref)
    assert {h["meta"]["split"] for h in r.json()["hits"]} == {"train"}


def test_image_search_multipart_and_base64_agree(client, tiny_model, media_dir):
    data = (media_dir / "img2.png").read_bytes()
    a = client.post("/v1/search/image", files={"image": ("x.png", data, "image/png")}, data={"k": "3"})
    b = client.post("/knn-service", json={"image": base64.b64encode(data).decode(), "num_images": 3})
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert [h["id"] for h in a.json()["hits"]] == [h["id"] for h in b.json()]
    assert a.json()["hits"][0]["id"] == "img2"  # the same image is its own nearest neighbour
    assert a.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_the_caption_bank_is_embedded_before_the_first_caption_request(settings):
    """Warming embeds each index's captions in the background after startup (the demo's 7k took the
    first /v1/caption 11 s); the first request then finds them ready."""
    import time

    with start(settings) as c:
        state = c.app.state.registry.state
        deadline = time.monotonic() + 30
        while set(state._banks) != set(state.indexes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(state._banks) == set(state.indexes)
        texts, emb = state._banks[state.default_index]
        assert len(texts) == len(emb) > 0


def test_image_to_text_ranks_given_texts_and_the_caption_bank(client, tiny_model, media_dir):
    data = (media_dir / "img0.png").read_bytes()
    texts = ["a red square", "a blue circle", "green grass"]
    r = client.post(
        "/v1/search/image-to-text",
        files={"image": ("x.png", data)},
        data={"texts": "\n".join(texts), "k": "3"},
    )
    assert r.status_code == 200, r.text
    img = tiny_model.embed_images([Image.open(media_dir / "img0.png")])[0]
    ref = sorted(zip(texts, (tiny_model.embed_texts(texts) @ img).tolist(), strict=True), key=lambda t: -t[1])
    assert [c["text"] for c in r.json()["captions"]] == [t for t, _ in ref]
    bank = client.post("/v1/search/image-to-text", files={"image": ("x.png", data)}, data={"k": "20"}).json()
    captions = [
        "colour 0",
        "colour 1",
        "colour 2",
        "colour 3",
        "colour 4",
        "colour 5",
        "a red then blue clip",
    ]
    assert sorted(c["text"] for c in bank["captions"]) == sorted(captions)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "   "}, 422, ["query", "empty"]),
        ({"query": "x" * 1001}, 422, ["query", "1000"]),
        ({"query": "cow", "k": 101}, 422, ["k", "100"]),
        ({"query": "cow", "k": 0}, 422, ["k"]),
        ({"query": "cow", "index": "nope"}, 404, ["nope", "demo"]),
        ({"query": "cow", "media": "audio"}, 422, ["media"]),
        ({"query": "cow", "where": {"split": {"$ne": 1}}}, 422, ["where"]),
        ({"k": 3}, 422, ["query"]),
    ],
)
def test_text_search_rejects_bad_input(client, body, status, words):
    r = client.post("/v1/search/text", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and all(w in detail for w in words), detail


def test_image_upload_limits(client):
    def post(data, name="x.png"):
        return client.post("/v1/search/image", files={"image": (name, data, "image/png")})

    broken = png_bytes()[:60]
    assert post(broken).status_code in (415, 422)
    r = post(b"%PDF-1.4 not an image at all")  # a PNG content type does not make it an image
    assert r.status_code == 415 and "image" in r.json()["detail"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert post(svg, "x.svg").status_code == 415
    assert post(b"").status_code == 422
    buf = io.BytesIO()
    Image.new("1", (7000, 6000)).save(buf, "PNG")  # 42 Mpx in 5 kB: a decompression bomb
    r = post(buf.getvalue())
    assert r.status_code == 413 and "pixels" in r.json()["detail"] and "40000000" in r.json()["detail"]
    buf = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buf, "PNG")  # over PIL's own bomb limit too
    r = post(buf.getvalue())
    assert r.status_code == 413 and "40000000 pixels" in r.json()["detail"]
    assert client.post("/v1/search/image", data={"k": "3"}).status_code == 422  # no file


def test_upload_size_limit(settings):
    from app.config import LimitSettings

    settings.limits = LimitSettings(max_upload_bytes=1000)
    with start(settings) as c:
        noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, "PNG")
        r = c.post("/v1/search/image", files={"image": ("x.png", buf.getvalue())})
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        r = c.post("/knn-service", json={"image": base64.b64encode(buf.getvalue()).decode()})
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]


def test_bad_base64_and_json_instead_of_an_upload(client):
    r = client.post("/knn-service", json={"image": "not base64!!"})
    assert r.status_code == 422 and "image: not valid base64" in r.json()["detail"]
    r = client.post("/v1/search/image", json={"image_b64": "iVBORw0KGgo="})  # multipart only
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
