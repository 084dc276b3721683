"""Micro-batching across requests: one worker thread per model function, futures on the event loop.

A request handler awaits `batcher.submit(model, item)`. The worker thread takes the first waiting
item, waits up to `max_wait_ms` for more (up to `max_batch_size`; a lone request does not wait),
runs the pipeline's three stages (`preprocess` per item, one batched `_forward` under
`torch.inference_mode`, `postprocess` per row) and resolves each request's future. Items are
grouped by the model they were submitted with, so a request that started before a hot-swap
finishes on the old model.
"""

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from app import metrics
from training.errors import XModalError

log = logging.getLogger("xmodal.batching")


class QueueFullError(XModalError):
    """The batcher's queue is full; the HTTP layer answers 503 with Retry-After."""


class BatchTimeoutError(XModalError):
    """A request waited longer than the batcher's timeout; the HTTP layer answers 504."""


@dataclass
class Pipeline:
    """The three inference stages for one model function ("model" is whatever the batch runs on:
    an XModalModel for encoders, a LoadedIndex for search).

    preprocess(model, item) -> one item's input, e.g. a (3, H, W) tensor (CPU, per item)
    collate(inputs) -> the batch `forward` takes; default stacks tensors into (B, ...)
    forward(model, batch) -> (B, ...) tensor (rows go to CPU float32), or a list of B results
    postprocess(row) -> plain Python value for one item
    """

    name: str
    preprocess: Callable[[Any, Any], Any]
    forward: Callable[[Any, Any], torch.Tensor | list]
    postprocess: Callable[[Any], Any] = lambda row: row
    collate: Callable[[list[Any]], Any] = torch.stack


@dataclass
class _Job:
    model: Any
    item: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Runs `pipeline` on batches of concurrently submitted items in one worker thread."""

    def __init__(
        self,
        pipeline: Pipeline,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        timeout_s: float = 30.0,
    ):
        self.pipeline = pipeline
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.timeout_s = timeout_s
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._stopping = False
        self._last_size = 1
        self._thread = threading.Thread(target=self._run, name=f"batcher-{pipeline.name}", daemon=True)
        self._thread.start()
        self.batches_run = 0  # forward passes so far (tests check that requests share them)

    async def submit(self, model: Any, item: Any) -> Any:
        """The postprocessed result for `item`; raises QueueFullError or BatchTimeoutError."""
        loop = asyncio.get_running_loop()
        job = _Job(model, item, loop.create_future(), loop)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(
                f"{self.pipeline.name}: {self._queue.maxsize} requests already waiting "
                "(XMODAL_BATCH__MAX_QUEUE); retry shortly"
            ) from None
        try:
            return await asyncio.wait_for(job.future, self.timeout_s)
        except TimeoutError:
            raise BatchTimeoutError(
                f"{self.pipeline.name}: no result within {self.timeout_s:g} s (XMODAL_BATCH__TIMEOUT_S)"
            ) from None

    def close(self) -> None:
        """Stops the worker after the items already queued."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _take_batch(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """`first` plus whatever arrives within max_wait (same model only); also a job for the next batch."""
        # Wait for company only while requests overlap (the last batch had several): a lone client
        # gets no added latency, and under load batches fill from what queued during the last forward.
        wait = self.max_wait_s if self._last_size > 1 or not self._queue.empty() else 0.0
        batch, deadline = [first], time.perf_counter() + wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._stopping = True
                break
            if job.model is not first.model:
                return batch, job  # the other side of a hot-swap: next batch
            batch.append(job)
        return batch, None

    def _run(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is None:
                return
            batch, carry = self._take_batch(first)
            self._last_size = len(batch)
            batch = [j for j in batch if not j.future.done()]  # drop requests that timed out meanwhile
            if batch:
                self._process(batch)
            if carry is None and self._stopping:
                return

    def _process(self, batch: list[_Job]) -> None:
        name, p = self.pipeline.name, self.pipeline
        start = time.perf_counter()
        for j in batch:
            metrics.QUEUE_WAIT.labels(name).observe(start - j.enqueued)
        metrics.BATCH_SIZE.labels(name).observe(len(batch))
        model = batch[0].model
        ok: list[_Job] = []
        inputs = []
        for j in batch:  # stage 1: per item; a bad item fails alone
            try:
                inputs.append(p.preprocess(model, j.item))
                ok.append(j)
            except Exception as e:  # noqa: BLE001 - handed to the request that sent it
                _resolve(j, error=e)
        if not ok:
            return
        try:
            results = self._forward(model, inputs)
        except Exception as e:  # noqa: BLE001 - isolated below
            if len(ok) == 1:
                _resolve(ok[0], error=e)
                return
            # One bad item must not fail the others: run each alone, so only the bad one gets its error.
            log.warning("%s: a batch of %d failed (%s: %s); retrying its items one by one",
                        name, len(ok), type(e).__name__, e)  # fmt: skip
            metrics.BATCH_RETRIES.labels(name).inc()
            for j, x in zip(ok, inputs, strict=True):
                try:
                    _resolve(j, result=self._forward(model, [x])[0])
                except Exception as e1:  # noqa: BLE001 - handed to the request that sent it
                    _resolve(j, error=e1)
            return
        for j, r in zip(ok, results, strict=True):
            _resolve(j, result=r)

    def _forward(self, model: Any, inputs: list[Any]) -> list[Any]:
        """Stages 2 and 3 for preprocessed `inputs`: one postprocessed result per input."""
        p = self.pipeline
        t0 = time.perf_counter()
        with torch.inference_mode():  # stage 2: the batched hot path
            out = p.forward(model, p.collate(inputs))
        metrics.FORWARD_TIME.labels(p.name).observe(time.perf_counter() - t0)
        rows = out.float().cpu() if isinstance(out, torch.Tensor) else out
        results = [p.postprocess(row) for row in rows]  # stage 3
        if len(results) != len(inputs):
            raise RuntimeError(f"{p.name}: forward gave {len(results)} results for {len(inputs)} inputs")
        self.batches_run += 1
        return results


def _resolve(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    def _set() -> None:
        if job.future.done():  # timed out or cancelled meanwhile
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop closed (test client or server shut down)
        job.loop.call_soon_threadsafe(_set)
