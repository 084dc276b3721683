"""Prometheus metrics the service exports at /metrics (prometheus_client's default registry)."""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUEST_LATENCY = Histogram(
    "xmodal_request_seconds",
    "Request latency by route",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "xmodal_batch_size", "Items per forward pass", ["function"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
QUEUE_WAIT = Histogram(
    "xmodal_queue_wait_seconds", "Time a request waited for its batch", ["function"], buckets=_LATENCY_BUCKETS
)
FORWARD_TIME = Histogram(
    "xmodal_forward_seconds", "Batched model forward time", ["function"], buckets=_LATENCY_BUCKETS
)
INDEX_SIZE = Gauge("xmodal_index_items", "Items in each loaded index", ["index", "version"])
SWAPS = Counter("xmodal_swaps_total", "Hot-swaps by kind and outcome", ["kind", "outcome"])
BATCH_RETRIES = Counter(
    "xmodal_batch_retries_total", "Batched passes that failed and were retried item by item", ["function"]
)
