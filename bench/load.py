"""Mixed-route load on loopback: N clients mixing text search, image search, caption, VQA and classify.

    .venv/bin/python bench/load.py                                  # `make load`: 64 clients, 60 s
    .venv/bin/python bench/load.py --clients 8 --seconds 10         # a quick run
    .venv/bin/python bench/load.py --model var/models/default       # a model with caption/VQA heads

Starts `xmodal serve` on 127.0.0.1 (bench/serve.py's setup: a synthetic index of the model's
dimension), then runs --clients keep-alive connections for --seconds (and at most --requests in all),
each sending the routes in turn (client i starts at route i). Prints, per route: requests, answers
by status, req/s, p50 and p99 ms; and the server's resident memory at the start and the end. A model
without caption or VQA heads answers those routes 409 (counted, not hidden). Writes its table between
`<!-- bench:load -->` markers in BENCHMARKS.md with --write.
"""

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.serve import _post, free_port, make_setup, queries, start_server, wait_ready  # noqa: E402


def _images(n: int, size: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def multipart(image: bytes, **fields: str) -> tuple[bytes, str]:
    """A multipart/form-data body with the file field `image` and text fields; (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def requests_by_route(n_images: int, size: int) -> dict[str, list[tuple[str, bytes, str]]]:
    """route label -> prepared (path, body, content type) requests, cycled by the clients."""
    texts, images = queries(64), _images(n_images, size)
    js = "application/json"
    return {
        "text search": [("/v1/search/text", json.dumps({"query": t, "k": 12}).encode(), js) for t in texts],
        "image search": [("/v1/search/image", *multipart(im, k="12")) for im in images],
        "caption": [("/v1/caption", *multipart(im, k="1")) for im in images],
        "vqa": [("/v1/vqa", *multipart(im, question="what colour is it?")) for im in images],
        "classify": [("/v1/classify", *multipart(im, labels="cat, dog, car, tree")) for im in images],
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def mixed(base: str, clients: int, max_requests: int, seconds: float, reqs: dict) -> dict:
    """`clients` keep-alive loops over the routes; per route: latencies (ms) and statuses."""
    host, port = base.removeprefix("http://").split(":")
    routes = list(reqs)
    lat: dict[str, list[float]] = {r: [] for r in routes}
    status: dict[str, Counter] = {r: Counter() for r in routes}
    budget = iter(range(max_requests))
    deadline = time.monotonic() + seconds

    async def client(i: int):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for n in budget:
                if time.monotonic() > deadline:
                    return
                route = routes[(i + n) % len(routes)]
                path, body, ctype = reqs[route][n % len(reqs[route])]
                t0 = time.perf_counter()
                try:
                    code = await _post(reader, writer, host, path, body, ctype)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    code = "conn"
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                lat[route].append((time.perf_counter() - t0) * 1000)
                status[route][code] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    out = {}
    for r in routes:
        a = np.array(lat[r]) if lat[r] else np.array([np.nan])
        out[r] = {
            "requests": len(lat[r]), "rps": len(lat[r]) / wall, "status": dict(status[r]),
            "errors": sum(v for k, v in status[r].items() if k != 200),
            "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
        }  # fmt: skip
    return {"wall_s": wall, "routes": out}


def report(args, result: dict, rss: tuple[float, float]) -> str:
    lines = [
        "## Service: mixed-route load (bench/load.py)",
        "",
        f"Model `{args.model}`, {args.clients} clients for {args.seconds:g} s (at most {args.requests} "
        f"requests), {args.size}x{args.size} JPEG uploads, {os.cpu_count()} cores, loopback; 1-min load "
        f"average {os.getloadavg()[0]:.1f} at the end: **the host is shared with other engineers' jobs**, "
        f"so absolute figures are noisy. Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| route | requests | answers by status | req/s | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, r in result["routes"].items():
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["status"].items(), key=str))
        row = f"| {name} | {r['requests']} | {codes} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} |"
        lines.append(row)
    images = sum(r["rps"] for n, r in result["routes"].items() if n != "text search")
    lines += [
        "",
        f"- Images served per second across the image routes: {images:.1f}.",
        f"- Server resident memory: {rss[0]:.0f} MiB at the start, {rss[1]:.0f} MiB at the end.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny-clip", help="registry name or saved model dir")
    p.add_argument("--items", type=int, default=2000, help="synthetic index size")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--requests", type=int, default=20_000, help="bound on requests in all")
    p.add_argument("--size", type=int, default=256, help="side of the uploaded JPEGs")
    p.add_argument("--threads", type=int, default=1, help="server torch threads")
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = p.parse_args(argv)
    reqs = requests_by_route(8, args.size)
    with tempfile.TemporaryDirectory(prefix="xmodal-load-") as tmp:
        home = Path(tmp)
        model_dir, _ = make_setup(args.model, args.items, home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(model_dir, home, batching=True, threads=args.threads, port=port)
        try:
            wait_ready(base, proc)
            asyncio.run(mixed(base, 4, 20, 30, reqs))  # warm-up
            start = rss_mb(proc.pid)
            result = asyncio.run(mixed(base, args.clients, args.requests, args.seconds, reqs))
            end = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    text = report(args, result, (start, end))
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "load", text)
    return result


if __name__ == "__main__":
    main()
