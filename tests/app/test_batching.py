"""MicroBatcher: shared forward passes equal unbatched results; full queue, timeouts, bad items, hot-swap."""

import asyncio
import threading
import time

import pytest
import torch

from app.batching import BatchTimeoutError, MicroBatcher, Pipeline, QueueFullError
from app.inference import IMAGE, SEARCH, TEXT, Query
from tests.app.conftest import COLORS, png_bytes

TEXTS = [f"a picture of thing number {i}" for i in range(24)]


async def _gather(batcher, model, items):
    return await asyncio.gather(*(batcher.submit(model, x) for x in items))


def test_concurrent_texts_share_forward_passes_and_equal_unbatched(tiny_model):
    batcher = MicroBatcher(TEXT, max_batch_size=32, max_wait_ms=50)
    try:
        out = asyncio.run(_gather(batcher, tiny_model, TEXTS))
        assert batcher.batches_run <= 3  # 24 requests, a handful of forward passes
        torch.testing.assert_close(torch.stack(out), tiny_model.embed_texts(TEXTS), atol=1e-5, rtol=1e-4)
    finally:
        batcher.close()


def test_images_batched_equal_unbatched(tiny_model):
    import io

    from PIL import Image

    images = [Image.open(io.BytesIO(png_bytes(c))).convert("RGB") for c in COLORS]
    batched = MicroBatcher(IMAGE, max_batch_size=8, max_wait_ms=50)
    single = MicroBatcher(IMAGE, max_batch_size=1, max_wait_ms=0)
    try:
        a = asyncio.run(_gather(batched, tiny_model, images))
        b = asyncio.run(_gather(single, tiny_model, images))
        assert batched.batches_run < len(images) and single.batches_run == len(images)
        torch.testing.assert_close(torch.stack(a), torch.stack(b), atol=1e-5, rtol=1e-4)
    finally:
        batched.close()
        single.close()


def _blocking_pipeline(release: threading.Event, seen: list):
    def forward(model, batch):
        seen.append((model, list(batch)))
        release.wait(5)
        return torch.tensor([[float(x)] for x in batch])

    return Pipeline("blocking", preprocess=lambda m, x: x, forward=forward, collate=list)


def test_full_queue_raises_and_others_complete():
    release, seen = threading.Event(), []
    batcher = MicroBatcher(_blocking_pipeline(release, seen), max_batch_size=1, max_wait_ms=0, max_queue=2)

    async def scenario():
        first = asyncio.create_task(batcher.submit("m", 1))
        while not seen:  # the worker holds item 1 in forward; the queue is empty again
            await asyncio.sleep(0.005)
        queued = [asyncio.create_task(batcher.submit("m", i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="MAX_QUEUE"):
            await batcher.submit("m", 4)
        release.set()
        return [float(r) for r in await asyncio.gather(first, *queued)]

    try:
        assert asyncio.run(scenario()) == [1.0, 2.0, 3.0]
    finally:
        release.set()
        batcher.close()


def test_timeout_raises_clear_error():
    release, seen = threading.Event(), []
    batcher = MicroBatcher(_blocking_pipeline(release, seen), max_batch_size=4, max_wait_ms=0, timeout_s=0.1)
    try:
        t0 = time.perf_counter()
        with pytest.raises(BatchTimeoutError, match="0.1 s"):
            asyncio.run(batcher.submit("m", 1))
        assert time.perf_counter() - t0 < 2
    finally:
        release.set()
        batcher.close()


def test_bad_item_fails_alone():
    def pre(model, x):
        if x < 0:
            raise ValueError(f"negative {x}")
        return x

    pipe = Pipeline("p", preprocess=pre, forward=lambda m, b: torch.tensor(b)[:, None] * 2.0, collate=list)
    batcher = MicroBatcher(pipe, max_batch_size=8, max_wait_ms=30)

    async def scenario():
        return await asyncio.gather(*(batcher.submit("m", x) for x in (1, -1, 3)), return_exceptions=True)

    try:
        a, b, c = asyncio.run(scenario())
        assert float(a) == 2.0 and float(c) == 6.0 and isinstance(b, ValueError)
        assert batcher.batches_run == 1
    finally:
        batcher.close()


def test_failed_batch_is_retried_item_by_item_so_only_the_bad_item_fails():
    def forward(model, batch):  # fails the whole pass when any item is poison (as a tokenizer would)
        if any(x < 0 for x in batch):
            raise ValueError("poison in batch")
        return torch.tensor(batch)[:, None] * 2.0

    pipe = Pipeline("p", preprocess=lambda m, x: x, forward=forward, collate=list)
    batcher = MicroBatcher(pipe, max_batch_size=16, max_wait_ms=50)
    items = [*range(1, 9), -1, *range(9, 17)]

    async def scenario():
        return await asyncio.gather(*(batcher.submit("m", x) for x in items), return_exceptions=True)

    try:
        out = asyncio.run(scenario())
        for x, r in zip(items, out, strict=True):
            if x < 0:
                assert isinstance(r, ValueError)
            else:
                assert float(r) == 2.0 * x
    finally:
        batcher.close()


def test_batches_never_mix_models():
    release, seen = threading.Event(), []
    release.set()
    batcher = MicroBatcher(_blocking_pipeline(release, seen), max_batch_size=16, max_wait_ms=500)

    async def scenario():
        jobs = [batcher.submit("old" if i < 5 else "new", i) for i in range(10)]
        return await asyncio.gather(*jobs)

    try:
        out = asyncio.run(scenario())
        assert [float(x) for x in out] == [float(i) for i in range(10)]
        assert all(m == ("old" if x < 5 else "new") for m, items in seen for x in items)
        assert len(seen) == 2  # one batch per model
    finally:
        batcher.close()


def test_queue_full_is_503_with_retry_after(client, monkeypatch):
    async def full(model, item):
        raise QueueFullError("encode_text: 1024 requests already waiting (XMODAL_BATCH__MAX_QUEUE)")

    monkeypatch.setattr(client.app.state.encoders.text_search_batcher, "submit", full)
    r = client.post("/v1/search/text", json={"query": "cow"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "MAX_QUEUE" in r.json()["detail"]


def test_concurrent_searches_share_index_passes_and_equal_single_searches(home_template):
    import numpy as np

    from index.search import open_index

    index = open_index("demo", root=home_template / "indexes")
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(12, index.dim)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    filters = [(None, None), ("image", None), (None, {"split": "test"})]
    queries = [(torch.from_numpy(v), 1 + i % 4, *filters[i % 3]) for i, v in enumerate(vecs)]
    batcher = MicroBatcher(SEARCH, max_batch_size=32, max_wait_ms=50)
    try:

        async def scenario():
            return await asyncio.gather(
                *(batcher.submit(index, Query(v.numpy(), k, m, w)) for v, k, m, w in queries)
            )

        got = asyncio.run(scenario())
        assert batcher.batches_run <= 3
        for (v, k, media, where), hits in zip(queries, got, strict=True):
            want = index.search(v.numpy()[None], k, media, where)[0]
            assert [(h.item_id, round(h.score, 5)) for h in hits] == [
                (h.item_id, round(h.score, 5)) for h in want
            ]
    finally:
        batcher.close()
        index.close()


def test_fused_text_search_equals_encode_then_search(home_template, tiny_model):
    from app.inference import TEXT_SEARCH, TextQuery
    from index.search import open_index

    index = open_index("demo", root=home_template / "indexes")
    batcher = MicroBatcher(TEXT_SEARCH, max_batch_size=32, max_wait_ms=50)
    filters = [(None, None), ("video", None), (None, {"split": "train"})]
    queries = [TextQuery(t, index, 1 + i % 5, *filters[i % 3]) for i, t in enumerate(TEXTS[:12])]
    try:
        got = asyncio.run(_gather(batcher, tiny_model, queries))
        assert batcher.batches_run <= 3
        vecs = tiny_model.embed_texts([q.text for q in queries]).numpy()
        for q, v, hits in zip(queries, vecs, got, strict=True):
            want = index.search(v[None], q.k, q.media, q.where)[0]
            assert [(h.item_id, round(h.score, 4)) for h in hits] == [
                (h.item_id, round(h.score, 4)) for h in want
            ]
    finally:
        batcher.close()
        index.close()
