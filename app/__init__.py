"""xmodal service: the FastAPI app, batching, hot-swap registry, web page and the `xmodal` CLI."""
