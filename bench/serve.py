"""Service benchmark: text search over HTTP on loopback against the in-process cost, batching on/off.

    .venv/bin/python bench/serve.py                  # the default model's architecture, 20k-item index
    .venv/bin/python bench/serve.py --model tiny-clip --requests 60 --seconds 10   # a quick smoke run

For batching on and off it starts `xmodal serve` (a subprocess on 127.0.0.1), then runs 1, 8, 32
and 128 concurrent clients (keep-alive connections), each level bounded by --requests and --seconds,
and records throughput and p50/p99 latency of POST /v1/search/text. In the same run it times the
in-process path (encode one text + search) and counts failed requests while 32 clients run across
hot-swaps (model activation and index reload). Writes a table between `<!-- bench:serve -->` and
`<!-- /bench:serve -->` in BENCHMARKS.md and a plot to bench/serve.png (matplotlib).
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

LEVELS = (1, 8, 32, 128)
ADMIN = "bench-admin-token-0123456789"


def make_setup(model_ref: str, items: int, home: Path) -> tuple[Path, str]:
    """A saved model dir and a published Flat index `bench` of `items` synthetic vectors it 'embedded'."""
    from index.publish import write_version
    from index.store import Row
    from training.factory import create_model, load_model, save_model

    if (Path(model_ref) / "config.json").is_file():
        model_dir = Path(model_ref)
        fp = load_model(model_dir).fingerprint
    else:
        model_dir = home / "models" / "bench"
        model = create_model(model_ref)
        fp = save_model(model, model_dir, {"note": "benchmark copy"})
    dim = load_model(model_dir).embed_dim
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(items, dim)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [Row(f"item{i}", "image", f"/bench/item{i}.png", [f"synthetic item {i}"]) for i in range(items)]
    write_version("bench", vecs, rows, {"model_fingerprint": fp}, factory="Flat", root=home / "indexes")
    return model_dir, fp


def queries(n: int) -> list[str]:
    words = [
        "red",
        "small",
        "cartoon",
        "dog",
        "bicycle",
        "house",
        "tree",
        "blue",
        "car",
        "person",
        "cat",
        "boat",
    ]
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(words, size=4)) + f" {i}" for i in range(n)]


def in_process_ms(model_dir: Path, home: Path, threads: int, n: int = 60) -> float:
    """p50 of encode one text + search the index, in this process (the floor HTTP is compared to)."""
    import torch

    from app.graphs import text_encoder
    from index.search import open_index
    from training.factory import load_model

    torch.set_num_threads(threads)
    model = load_model(model_dir).eval()
    encode = text_encoder(model)  # the server's encoder (traced), so only HTTP and batching differ
    idx = open_index("bench", root=home / "indexes")
    times = []
    for i, q in enumerate(queries(n + 5)):
        t0 = time.perf_counter()
        with torch.inference_mode():
            vec = encode(model.tokenize([q])).numpy()
        idx.search(vec, 12)
        if i >= 5:  # first calls warm caches
            times.append((time.perf_counter() - t0) * 1000)
    idx.close()
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, home: Path, batching: bool, threads: int, port: int) -> subprocess.Popen:
    env = {
        **os.environ, "XMODAL_HOME": str(home), "XMODAL_TORCH_THREADS": str(threads),
        "XMODAL_ADMIN_TOKEN": ADMIN, "XMODAL_BATCH__MAX_QUEUE": "4096", "XMODAL_BATCH__TIMEOUT_S": "120",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model", str(model_dir), "--index", "bench", "--log-level", "warning"]
    cmd += [] if batching else ["--no-batching"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wait_ready(base: str, proc: subprocess.Popen, timeout_s: float = 600, path: str = "/readyz") -> None:
    """Until GET `path` answers 200 (another service names its own path: bench/peer.py)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(base + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready within {timeout_s:.0f} s")


async def _post(
    reader, writer, host: str, path: str, body: bytes, ctype: str = "application/json", method: str = "POST"
) -> int:
    """One HTTP/1.1 keep-alive request on an open connection; returns the status (the body is read and
    dropped). Hand-rolled so that the load generator, which shares the host's cores with the server,
    costs little CPU per request: a heavy client would measure itself, not the server."""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lines = head.lower().split(b"\r\n")
    length = next((int(x.split(b":", 1)[1]) for x in lines if x.startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return status


async def load(
    base: str,
    clients: int,
    n: int,
    seconds: float,
    texts: list[str],
    stop: asyncio.Event | None = None,
    path: str = "/v1/search/text",
    body=lambda text: {"query": text, "k": 12},
    keep_alive: bool = True,
) -> dict:
    """`clients` concurrent loops, one keep-alive connection each, sharing `n` requests (stopping after
    `seconds`, or once `stop` is set). Each POSTs `body(text)` to `path` (another service: bench/peer.py);
    `keep_alive=False` opens a connection per request, for servers that answer `Connection: close`."""
    host, port = base.removeprefix("http://").split(":")
    bodies = [json.dumps(body(t)).encode() for t in texts]
    latencies, failures, counter = [], 0, iter(range(n))
    deadline = time.monotonic() + seconds

    async def worker():
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                    return
                t0 = time.perf_counter()
                try:
                    ok = await _post(reader, writer, host, path, bodies[i % len(bodies)]) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                if not keep_alive:  # the connection time is part of that server's latency
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append((time.perf_counter() - t0) * 1000)
                failures += not ok
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "clients": clients, "requests": len(lat), "rps": len(lat) / wall, "failed": failures,
        "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
    }  # fmt: skip


async def across_swaps(base: str, model_dir: Path, texts: list[str]) -> dict:
    """32 clients from before the first to after the last of 4 hot-swaps (model re-activation and
    index reload, twice); counts failed requests."""
    import httpx

    auth = {"Authorization": f"Bearer {ADMIN}"}
    stop = asyncio.Event()

    async def swaps():
        codes = []
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=600) as admin:
            for _ in range(2):
                await asyncio.sleep(1.0)
                r = await admin.post("/v1/admin/models/activate", json={"model": str(model_dir)})
                codes.append(r.status_code)
                r = await admin.post("/v1/admin/indexes/bench/reload", json={})
                codes.append(r.status_code)
            await asyncio.sleep(1.0)
        stop.set()
        return codes

    result, codes = await asyncio.gather(load(base, 32, 10**6, 900, texts, stop), swaps())
    return {**result, "swaps": len(codes), "swap_codes": codes}


def run_mode(model_dir, home, batching, threads, args, texts) -> tuple[list[dict], dict | None]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(model_dir, home, batching, threads, port)
    try:
        wait_ready(base, proc)
        asyncio.run(load(base, 8, 16, 60, texts))  # warm-up
        rows = []
        for c in LEVELS:
            n = max(args.requests, 2 * c)
            rows.append({"batching": batching, **asyncio.run(load(base, c, n, args.seconds, texts))})
            r = rows[-1]
            print(f"batching={batching} clients={c}: {r['rps']:.1f} req/s p50 {r['p50']:.1f} ms "
                  f"p99 {r['p99']:.1f} ms failed {r['failed']}", flush=True)  # fmt: skip
        swap = asyncio.run(across_swaps(base, model_dir, texts)) if batching else None
        return rows, swap
    finally:
        proc.terminate()
        proc.wait(30)


def plot(rows: list[dict], path: Path) -> None:
    """Throughput and p50 latency vs concurrent clients (log2 x axis), one line per mode (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rps, p50) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for batching, colour in ((True, "tab:blue"), (False, "tab:red")):
        mode = sorted((r for r in rows if r["batching"] == batching), key=lambda r: r["clients"])
        label = f"batching {'on' if batching else 'off'}"
        rps.plot([r["clients"] for r in mode], [r["rps"] for r in mode], "o-", color=colour, label=label)
        p50.plot([r["clients"] for r in mode], [r["p50"] for r in mode], "o-", color=colour, label=label)
    for ax, title, unit in ((rps, "throughput", "requests/s"), (p50, "median latency", "p50 ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(LEVELS), [str(c) for c in LEVELS])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(f"text search {title}")
        ax.grid(alpha=0.3)
        ax.legend()
    p50.set_yscale("log")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def rows_from_report(path: Path) -> list[dict]:
    """The rows of the serve table already in BENCHMARKS.md (for --replot)."""
    section = path.read_text().split("<!-- bench:serve -->", 1)[1].split("<!-- /bench:serve -->", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] in ("on", "off"):
            rows.append({"batching": cells[0] == "on", "clients": int(cells[1]), "rps": float(cells[3]),
                         "p50": float(cells[4])})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lit-effnet-minilm", help="registry name or saved model dir")
    p.add_argument("--items", type=int, default=20_000, help="synthetic index size")
    p.add_argument(
        "--requests", type=int, default=5000, help="requests per concurrency level (at least 2x clients)"
    )
    p.add_argument("--seconds", type=float, default=10, help="time bound per level")
    p.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process alike")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--replot", action="store_true", help="only redraw the plot from the table in --out")
    args = p.parse_args(argv)
    if args.replot:
        plot(rows_from_report(args.out), Path(__file__).with_suffix(".png"))
        return

    texts = queries(4096)
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        model_dir, _ = make_setup(args.model, args.items, home)
        print(f"setup {time.perf_counter() - t0:.1f} s", flush=True)
        rows, swap, floors = [], None, []
        for batching in (True, False):
            # measured next to each server run: the host's load drifts between runs
            floors.append(in_process_ms(model_dir, home, args.threads))
            print(f"in-process encode + search p50 {floors[-1]:.2f} ms", flush=True)
            mode_rows, mode_swap = run_mode(model_dir, home, batching, args.threads, args, texts)
            rows += mode_rows
            swap = swap or mode_swap
    floor = floors[0]  # next to the batching-on run, whose one-client p50 it is compared with

    on = {r["clients"]: r for r in rows if r["batching"]}
    off = {r["clients"]: r for r in rows if not r["batching"]}
    speedup = on[32]["rps"] / off[32]["rps"]
    ratio = on[1]["p50"] / floor
    png = Path(__file__).with_suffix(".png")
    plot(rows, png)
    load1 = os.getloadavg()[0]
    lines = [
        "## Service: text search over HTTP (bench/serve.py)",
        "",
        f"Model `{args.model}`, Flat index of {args.items:,} synthetic vectors, k=12, torch threads "
        f"{args.threads}, {os.cpu_count()} cores (1-min load average {load1:.1f} at the end), loopback, one "
        "uvicorn process; each client is one keep-alive connection (asyncio, hand-written HTTP/1.1) in the "
        f"benchmark's process. Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| batching | clients | requests | req/s | p50 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {'on' if r['batching'] else 'off'} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} | {r['failed']} |"
        )
    lines += [
        "",
        f"- In-process encode + search (same model, same traced text encoder, same threads), measured "
        "just before each server run: "
        f"p50 **{floors[0]:.2f} ms** (before batching on), {floors[1]:.2f} ms (before batching off).",
        f"- Batching at 32 clients: **{speedup:.1f}x** the throughput of batch size 1 (target >= 3.5x).",
        f"- p50 at one client: **{ratio:.2f}x** the in-process time (target <= 1.3x).",
        f"- Across {swap['swaps']} hot-swaps (model activate, index reload; answers {swap['swap_codes']}) "
        f"under 32 clients: **{swap['failed']} failed** of {swap['requests']} requests (target 0).",
        "",
        f"![throughput vs clients]({png.relative_to(ROOT)})",
    ]
    block = "\n".join(lines)
    write_section(args.out, "serve", block)
    print(block)


if __name__ == "__main__":
    main()
