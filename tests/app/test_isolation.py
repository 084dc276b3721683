"""One bad request fails alone: 32 concurrent valid requests and one poisoned one, for each poison kind."""

import asyncio
import json

import httpx
import pytest

QUERIES = ["a red square", "green", "something blue", "a dark picture"]
TEXT_POISONS = {"lone surrogate": "\ud800 cat", "control character": "a \x00 cat"}
WHERE_POISONS = {
    "quote in a key": {"split\"": 1},
    "injection in a key": {"kind\") OR 1=1 --": "x"},
    "NaN value": {"split": float("nan")},
    "Infinity value": {"split": float("inf")},
    "1,001 keys": {f"k{i}": i for i in range(1001)},
}


def _valid(route: str, query: str) -> dict:
    return {
        "/v1/search/text": {"query": query, "k": 4},
        "/v1/embed/text": {"texts": [query]},
        "/knn-service": {"text": query, "modality": "image", "num_images": 4},
    }[route]


def _cases():
    for route in ("/v1/search/text", "/v1/embed/text", "/knn-service"):
        for kind, text in TEXT_POISONS.items():
            yield pytest.param(route, _valid(route, text), id=f"{route}-{kind}")
    for kind, where in WHERE_POISONS.items():
        yield pytest.param("/v1/search/text", {"query": "cat", "k": 4, "where": where}, id=f"where-{kind}")


def _answer(r: httpx.Response):
    body = r.json()
    return body["hits"] if isinstance(body, dict) and "hits" in body else body


def _without_timing(hits):
    if isinstance(hits, dict) and "vectors" in hits:
        return [[round(x, 4) for x in v] for v in hits["vectors"]]
    return [(h["id"], round(h.get("score", h.get("similarity")), 4)) for h in hits]


@pytest.mark.parametrize(("route", "poison"), list(_cases()))
def test_poisoned_request_fails_alone(client, route, poison):
    async def scenario():
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            alone = {q: (await ac.post(route, json=_valid(route, q))) for q in QUERIES}
            valid = [ac.post(route, json=_valid(route, QUERIES[i % 4])) for i in range(32)]
            # raw JSON text: `\ud800` escapes and NaN/Infinity literals, as a hostile client sends them
            raw = json.dumps(poison).encode()
            bad = ac.post(route, content=raw, headers={"content-type": "application/json"})
            jobs = valid[:16] + [bad] + valid[16:]
            return alone, await asyncio.gather(*jobs)

    alone, out = asyncio.run(scenario())
    poisoned = out.pop(16)
    assert poisoned.status_code == 422, poisoned.text
    assert "detail" in poisoned.json()
    for i, r in enumerate(out):
        assert r.status_code == 200, r.text
        assert _without_timing(_answer(r)) == _without_timing(_answer(alone[QUERIES[i % 4]]))
