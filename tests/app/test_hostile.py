"""Hostile inputs, one table: each answers 4xx with a message naming the field, and the service stays
healthy after it. Valid but odd images answer 200."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import png_bytes


def _png(im: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _upload(data: bytes, name="x.png", ctype="image/png"):
    return {"files": {"image": (name, data, ctype)}}


def _raw(body: bytes):
    return {"content": body, "headers": {"content-type": "application/json"}}


BOMB = _png(Image.new("1", (7000, 6000)))  # 42 Mpx in a few kB
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
NESTED = b'{"query": "cat", "where": ' + b"[" * 20000 + b"]" * 20000 + b"}"
TEXT, IMAGE, KNN = "/v1/search/text", "/v1/search/image", "/knn-service"
ADMIN_ROUTE = "/v1/admin/indexes/demo/reload"
DIM = 32  # tiny-clip's embedding size (checked in the test)

CASES = [
    # (name, method, path, request kwargs, statuses, word the message must contain)
    ("truncated image", "post", IMAGE, _upload(png_bytes()[:60]), (415, 422), "image"),
    ("corrupt image", "post", IMAGE, _upload(b"\x89PNG\r\n\x1a\n" + bytes(200)), (415, 422), "image"),
    ("0-byte image", "post", IMAGE, _upload(b""), (422,), "image"),
    ("decompression bomb", "post", IMAGE, _upload(BOMB), (413,), "pixels"),
    ("text as image/png", "post", IMAGE, _upload(b"just some words"), (415,), "image"),
    ("SVG upload", "post", IMAGE, _upload(SVG, "x.svg", "image/svg+xml"), (415,), "image"),
    ("HTML upload", "post", IMAGE, _upload(HTML, "x.html", "text/html"), (415,), "image"),
    ("invalid UTF-8 JSON", "post", TEXT, _raw(b'{"query": "\xff\xfe cat"}'), (400, 422), "body"),
    ("invalid UTF-8 JSON, knn", "post", KNN, _raw(b'{"text": "\xff\xfe"}'), (400,), "body"),
    ("1 MB text", "post", TEXT, {"json": {"query": "x" * 1_000_000}}, (413,), "body"),
    ("10 MB JSON", "post", TEXT, _raw(b'{"query": "' + b"x" * 10_000_000 + b'"}'), (413,), "body"),
    ("deeply nested JSON", "post", TEXT, _raw(NESTED), (400, 422), "body"),
    ("deeply nested JSON, knn", "post", KNN, _raw(NESTED), (400,), "body"),
    ("k = 0", "post", TEXT, {"json": {"query": "cat", "k": 0}}, (422,), "k"),
    ("k = -1", "post", TEXT, {"json": {"query": "cat", "k": -1}}, (422,), "k"),
    ("k = 1e9", "post", TEXT, {"json": {"query": "cat", "k": 10**9}}, (422,), "k"),
    ("k a string", "post", TEXT, {"json": {"query": "cat", "k": "many"}}, (422,), "k"),
    ("k = 0, image", "post", IMAGE, {**_upload(png_bytes()), "data": {"k": "0"}}, (422,), "k"),
    ("k a string, image", "post", IMAGE, {**_upload(png_bytes()), "data": {"k": "x"}}, (422,), "k"),
    ("unknown index", "post", TEXT, {"json": {"query": "cat", "index": "nope"}}, (404,), "index"),
    ("bad base64", "post", KNN, {"json": {"image": "not base64!!"}}, (422,), "image"),
    ("NaN embedding", "post", KNN, _raw(json.dumps({"embedding_input": [float("nan")] * DIM}).encode()),
     (422,), "embedding_input"),
    ("wrong-length embedding", "post", KNN, {"json": {"embedding_input": [0.1] * 3}}, (422,),
     "embedding_input"),
    ("path traversal", "get", "/media/demo/..%2F..%2F..%2Fetc%2Fpasswd", {}, (404,), "item"),
    ("path traversal, index", "get", "/media/..%2F..%2Fetc/passwd", {}, (404,), "index"),
    ("admin, no token", "post", ADMIN_ROUTE, {}, (401,), "Authorization"),
    ("admin, wrong token", "post", ADMIN_ROUTE,
     {"headers": {"Authorization": "Bearer wrong-token-0123456789"}}, (401,), "Authorization"),
    ("admin, non-ASCII token", "post", ADMIN_ROUTE,
     {"headers": {"Authorization": "Bearer jeton-à-clé".encode()}}, (401,), "Authorization"),
    ("index not a string, knn", "post", KNN, {"json": {"text": "cat", "indice_name": {"a": 1}}}, (422,),
     "indice_name"),
    ("index not a string, metadata", "post", "/metadata", {"json": {"ids": ["a"], "indice_name": [1]}},
     (422,), "indice_name"),
    ("num_images = Infinity", "post", KNN, _raw(b'{"text": "cat", "num_images": Infinity}'), (422,),
     "num_images"),
    ("where, bad key", "post", TEXT, {"json": {"query": "c", "where": {"a b": 1}}}, (422,), "where"),
    ("where, nested value", "post", TEXT, {"json": {"query": "c", "where": {"a": {"$ne": 1}}}},
     (422,), "where"),
    ("where, list value", "post", TEXT, {"json": {"query": "c", "where": {"a": [1]}}}, (422,), "where"),
    ("where, not an object", "post", TEXT, {"json": {"query": "c", "where": [1]}}, (422,), "where"),
]  # fmt: skip


ARGS = ("name", "method", "path", "kw", "statuses", "word")


@pytest.mark.parametrize(ARGS, CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_4xx_naming_the_field(client, tiny_model, name, method, path, kw, statuses, word):
    assert tiny_model.embed_dim == DIM
    r = getattr(client, method)(path, **kw)
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str) and word in detail, detail
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/search/text", json={"query": "cat", "k": 2}).status_code == 200


def _animated_gif() -> bytes:
    frames = [Image.new("P", (40, 30), i * 40) for i in range(4)]
    return _png(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _mpo() -> bytes:
    a, b = Image.new("RGB", (48, 32), (200, 20, 20)), Image.new("RGB", (48, 32), (20, 20, 200))
    return _png(a, "MPO", save_all=True, append_images=[b])


ODD = {
    "animated GIF": _animated_gif(),
    "CMYK JPEG": _png(Image.new("CMYK", (40, 30), (0, 200, 200, 0)), "JPEG"),
    "16-bit PNG": _png(Image.fromarray((np.arange(1200, dtype=np.uint16) * 50).reshape(30, 40))),
    "1x1": _png(Image.new("RGB", (1, 1), (10, 200, 10))),
    "10000x1": _png(Image.new("RGB", (10000, 1), (10, 10, 200))),
    "LA mode": _png(Image.new("LA", (40, 30), (128, 100))),
    "MPO": _mpo(),
    "large JPEG (drafted)": _png(Image.new("RGB", (4000, 3000), (90, 90, 20)), "JPEG"),
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_valid_images_answer_200(client, name):
    r = client.post("/v1/search/image", files={"image": ("x", ODD[name], "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert len(r.json()["hits"]) > 0


def test_decoded_images_are_downscaled_and_bounded_in_aspect():
    from app.config import LimitSettings
    from app.media import MAX_ASPECT, decode_image

    limits = LimitSettings(decode_max_side=256)
    big = decode_image(ODD["large JPEG (drafted)"], limits)
    assert max(big.size) == 256 and big.mode == "RGB"
    strip = decode_image(ODD["10000x1"], limits)
    assert max(strip.size) <= MAX_ASPECT * min(strip.size)
    deep = decode_image(ODD["16-bit PNG"], limits)
    assert deep.getextrema()[0][1] == 255  # 16-bit greys scaled to 8 bits, not clipped to white
    assert decode_image(ODD["MPO"], limits).size == (48, 32)


def test_decode_pool_full_is_queue_full_and_decodes_in_a_worker_thread(monkeypatch):
    import asyncio
    import threading

    from app import media
    from app.batching import QueueFullError
    from app.config import LimitSettings

    threads = []

    def spy(data, limits, field):
        threads.append(threading.current_thread().name)
        return real(data, limits, field)

    real = media.decode_image
    monkeypatch.setattr(media, "decode_image", spy)
    decoder = media.ImageDecoder(LimitSettings(decode_workers=1, decode_queue=1))

    async def scenario():
        first = asyncio.ensure_future(decoder.decode(ODD["large JPEG (drafted)"]))
        await asyncio.sleep(0)  # the first upload is in the pool: the queue of 1 is full
        with pytest.raises(QueueFullError, match="DECODE_QUEUE"):
            await decoder.decode(png_bytes())
        return await first

    try:
        image = asyncio.run(scenario())
        assert max(image.size) <= 1024 and threads == ["decode_0"]
    finally:
        decoder.close()
