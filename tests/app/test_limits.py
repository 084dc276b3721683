"""Body limits counted on the stream: chunked bodies included, reading stops at the limit, 413 names it."""

import asyncio
import json

import pytest

CHUNK = 4096


MULTIPART_HEAD = (
    b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
)


def _call(app, path: str, body_size: int, headers: list[tuple[bytes, bytes]], head=b'{"query": "'):
    """Sends a `body_size`-byte body (`head`, then x's) to `path` in CHUNK-byte pieces, as a chunked
    request does; returns (status, detail, bytes pulled)."""
    pulled, sent = 0, []
    body = (head + b"x" * body_size)[:body_size]

    async def receive():
        nonlocal pulled
        if pulled >= len(body):
            return {"type": "http.disconnect"}
        piece = body[pulled : pulled + CHUNK]
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": pulled < len(body)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 1), "server": ("localhost", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(text)["detail"], pulled


@pytest.mark.parametrize("route", ["/v1/search/text", "/knn-service", "/v1/search/image"])
def test_chunked_body_twice_the_limit_is_413_and_read_no_further(client, route):
    limits = client.app.state.settings.limits
    multipart = route == "/v1/search/image"
    limit = limits.max_json_bytes if route == "/v1/search/text" else limits.upload_body_bytes  # knn: base64
    ctype = b"multipart/form-data; boundary=xx" if multipart else b"application/json"
    head = MULTIPART_HEAD if multipart else b'{"query": "'
    status, detail, pulled = _call(client.app, route, 2 * limit, [(b"content-type", ctype)], head)
    assert status == 413
    assert str(limit) in detail
    assert pulled <= limit + CHUNK  # stopped at the chunk that crossed the limit


def test_declared_length_over_the_limit_is_413_before_reading(client):
    limit = client.app.state.settings.limits.max_json_bytes
    headers = [(b"content-type", b"application/json"), (b"content-length", str(limit + 1).encode())]
    status, detail, pulled = _call(client.app, "/v1/search/text", limit + 1, headers)
    assert status == 413 and str(limit) in detail and pulled == 0


def test_json_route_takes_bodies_up_to_the_json_limit(client):
    r = client.post("/v1/search/text", json={"query": "a cow", "k": 3, "pad": "x" * 60_000})
    assert r.status_code == 200, r.text


def test_embed_text_takes_its_documented_maximum_and_413s_past_its_own_limit(client):
    """/v1/embed/text documents MAX_TEXTS texts of MAX_TEXT_CHARS characters: the most that allows (each
    character an astral one, 12 bytes as JSON escapes) is answered, far over the 64 KiB JSON limit; a
    body past the route's own limit is 413 naming the settings it comes from, read no further."""
    from app.limits import texts_body_bytes

    limits = client.app.state.settings.limits
    texts = ["\N{MUSICAL SYMBOL G CLEF}" * limits.max_text_chars] * limits.max_texts
    body = json.dumps({"texts": texts}).encode()  # ensure_ascii: "\ud834\udd1e" per character
    assert limits.max_json_bytes < len(body) <= texts_body_bytes(limits)
    r = client.post("/v1/embed/text", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["vectors"]) == limits.max_texts
    limit = texts_body_bytes(limits)
    ctype = [(b"content-type", b"application/json")]
    status, detail, pulled = _call(client.app, "/v1/embed/text", limit + 1, ctype, b'{"texts": ["')
    assert status == 413 and str(limit) in detail and "XMODAL_LIMITS__MAX_TEXTS" in detail
    assert pulled <= limit + CHUNK
