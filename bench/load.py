"""Mixed-route load on loopback: N clients mixing text search, image search, caption, VQA and classify.

    .venv/bin/python bench/load.py                                  # `make load`: 64 clients, 60 s
    .venv/bin/python bench/load.py --clients 8 --seconds 10         # a quick run
    .venv/bin/python bench/load.py --model var/models/default       # a model with caption/VQA heads

Starts `xmodal serve` on 127.0.0.1 (bench/serve.py's setup: a synthetic index of the model's
dimension), then runs --clients keep-alive connections for --seconds (and at most --requests in all),
each sending the routes in turn (client i starts at route i). Prints, per route: requests, answers
by status, req/s, p50 and p99 ms; and the server's resident memory at the start and the end. Then
--uploaders clients upload 40-megapixel JPEGs while one probe times /healthz. A model
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


def big_jpeg(width: int = 7300, height: int = 5475) -> bytes:
    """A 40-megapixel JPEG (smooth gradient plus mild noise: a few MB, like a phone photo)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    arr = (x * 0.6 + y * 0.4 + rng.normal(0, 4, (height, width, 1))).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.repeat(arr, 3, axis=2)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


async def healthz_under_uploads(base: str, uploaders: int, seconds: float, image: bytes) -> dict:
    """/healthz latency (one prober, every 20 ms) while `uploaders` clients post `image` to image search."""
    host, port = base.removeprefix("http://").split(":")
    body, ctype = multipart(image, k="12")
    probes, uploads = [], Counter()
    deadline = time.monotonic() + seconds

    async def uploader():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                uploads[await _post(reader, writer, host, "/v1/search/image", body, ctype)] += 1
        finally:
            writer.close()

    async def prober():
        await asyncio.sleep(1.0)  # let the uploads start
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                assert await _post(reader, writer, host, "/healthz", b"", method="GET") == 200
                probes.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.02)
        finally:
            writer.close()

    await asyncio.gather(prober(), *(uploader() for _ in range(uploaders)))
    return {"probes": len(probes), "p50": float(np.percentile(probes, 50)),
            "p99": float(np.percentile(probes, 99)), "uploads": dict(uploads)}  # fmt: skip


def in_process_encode_rate(model_dir: Path, size: int, threads: int, seconds: float = 8) -> float:
    """Images per second decoded, preprocessed and embedded in batches of 32 in this process."""
    import torch
    from PIL import Image

    from training.factory import load_model

    torch.set_num_threads(threads)
    model = load_model(model_dir).eval()
    data = _images(32, size)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch = torch.stack([model.preprocess(Image.open(io.BytesIO(d)).convert("RGB")) for d in data])
        with torch.inference_mode():
            model.encode_image(batch, normalize=True)
        n += len(data)
    return n / (time.perf_counter() - t0)


def report(args, result: dict, rss: tuple[float, float], health: dict | None, encode_rate: float) -> str:
    model = Path(args.model).name if Path(args.model).is_dir() else args.model
    lines = [
        "## Service: mixed-route load (bench/load.py)",
        "",
        f"Model `{model}`, {args.clients} clients for {args.seconds:g} s (at most {args.requests} "
        f"requests), {args.size}x{args.size} JPEG uploads, {os.cpu_count()} cores, loopback; 1-min load "
        f"average {os.getloadavg()[0]:.1f} at the end (the load generator shares the 2 cores with the "
        f"server), so read the ratios. Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| route | requests | answers by status | req/s | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, r in result["routes"].items():
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["status"].items(), key=str))
        row = f"| {name} | {r['requests']} | {codes} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} |"
        lines.append(row)
    ok = sum(r["status"].get(200, 0) for n, r in result["routes"].items() if n != "text search")
    images = ok / result["wall_s"]
    lines += [
        "",
        f"- Images served (200 answers) per second across the image routes: **{images:.1f}**, "
        f"{images / encode_rate:.2f}x the in-process batched encode rate measured just before "
        f"({encode_rate:.1f} images/s, batches of 32, same model and threads; target >= 0.6x).",
        f"- Server resident memory: {rss[0]:.0f} MiB at the start, {rss[1]:.0f} MiB at the end.",
    ]
    if health:
        lines.append(
            f"- `/healthz` while {args.uploaders} clients upload 40-megapixel JPEGs to image search: p50 "
            f"{health['p50']:.1f} ms, p99 **{health['p99']:.1f} ms** over {health['probes']} probes "
            f"(target p99 <= 50 ms); uploads answered {health['uploads']}."
        )
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
    p.add_argument("--encode-seconds", type=float, default=8, help="in-process encode measurement")
    p.add_argument("--uploaders", type=int, default=8, help="40-megapixel uploaders for the /healthz probe")
    p.add_argument("--upload-seconds", type=float, default=20, help="0: skip the /healthz probe")
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = p.parse_args(argv)
    reqs = requests_by_route(8, args.size)
    with tempfile.TemporaryDirectory(prefix="xmodal-load-") as tmp:
        home = Path(tmp)
        model_dir, _ = make_setup(args.model, args.items, home)
        encode_rate = in_process_encode_rate(model_dir, args.size, args.threads, args.encode_seconds)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(model_dir, home, batching=True, threads=args.threads, port=port)
        try:
            wait_ready(base, proc)
            asyncio.run(mixed(base, 4, 10, 30, reqs))  # warm-up
            start = rss_mb(proc.pid)
            result = asyncio.run(mixed(base, args.clients, args.requests, args.seconds, reqs))
            end = rss_mb(proc.pid)
            health = None
            if args.upload_seconds > 0:
                big = big_jpeg()
                health = asyncio.run(healthz_under_uploads(base, args.uploaders, args.upload_seconds, big))
        finally:
            proc.terminate()
            proc.wait(30)
    text = report(args, result, (start, end), health, encode_rate)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "load", text)
    return result


if __name__ == "__main__":
    main()
