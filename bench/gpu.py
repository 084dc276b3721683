"""GPU device check (run through bench/gpu.sh): index build, serve, search and caption on CUDA, < 5 min.

    bench/gpu.sh                       # on a GPU host; on CPU it says it needs a GPU and exits 0
    .venv/bin/python bench/gpu.py --images 2048 --seconds 20
    .venv/bin/python bench/gpu.py --device cpu --clip REF --coca REF --images 32 --seconds 2 --out /tmp/b.md
                                       # a smoke run of the script itself on CPU, with tiny models

ViT-B-32 and coca_ViT-B-32 with random weights (no download; throughput does not depend on the
weights) are imported as model dirs; synthetic 256 px JPEGs are indexed with `xmodal index build
--device auto`; `xmodal serve` (device auto, bf16 autocast) answers text search at 1/8/32/128
clients and /v1/caption through the CoCa decoder. Figures land in BENCHMARKS.md (section gpu).
"""

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.serve import ADMIN, free_port, load, queries, wait_ready  # noqa: E402


def make_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg")
        (folder / f"{i:05d}.txt").write_text(f"synthetic picture number {i}")


def build_index(model: str, images: Path, device: str) -> float:
    """`xmodal index build --device auto` of `images` into index `gpu`; returns the seconds it took."""
    from index.cli import main as index_main

    t0 = time.perf_counter()
    workers = str(min(8, os.cpu_count() or 1))
    index_main(
        [
            "build",
            "--model",
            model,
            "--name",
            "gpu",
            "--dir",
            str(images),
            "--factory",
            "Flat",
            "--batch-size",
            "256",
            "--workers",
            workers,
            "--device",
            "auto",
            "--no-progress",
        ]
    )
    return time.perf_counter() - t0


def serve(model: str, home: Path, port: int, device: str) -> subprocess.Popen:
    env = {**os.environ, "XMODAL_HOME": str(home), "XMODAL_ADMIN_TOKEN": ADMIN, "XMODAL_DEVICE": device}
    cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port), "--model", model,
           "--index", "gpu", "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def caption_rate(base: str, image: bytes, n: int) -> float:
    import httpx

    t0 = time.perf_counter()
    for _ in range(n):
        r = httpx.post(base + "/v1/caption", files={"image": ("x.jpg", image)}, timeout=60)
        r.raise_for_status()
    return n / (time.perf_counter() - t0)


def measure(args, home: Path) -> tuple[float, list[dict], float]:
    """(images/s embedded, search rows per client level, captions/s) in the fresh XMODAL_HOME `home`."""
    os.environ["XMODAL_HOME"] = str(home)
    from training.model_cli import main as model_main

    for ref, name in ((args.clip, "vitb32"), (args.coca, "coca")):
        model_main(["import", ref, "--name", name])
    make_images(home / "images", args.images)
    embed_rate = args.images / build_index("vitb32", home / "images", args.device)
    rows = []
    for model in ("vitb32", "coca"):
        if model == "coca":  # the CoCa serves captions; it needs its own index to start
            build_index("coca", home / "images", args.device)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = serve(model, home, port, args.device)
        try:
            wait_ready(base, proc)
            if model == "vitb32":
                texts = queries(512)
                for clients in (1, 8, 32, 128):
                    rows.append(asyncio.run(load(base, clients, 100_000, args.seconds, texts)))
            else:
                caps = caption_rate(base, (home / "images" / "00000.jpg").read_bytes(), 20)
        finally:
            proc.terminate()
            proc.wait(30)
    return embed_rate, rows, caps


def main(argv: list[str] | None = None) -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=15.0, help="per client level")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--device", default="auto", help="auto needs CUDA; cpu makes a smoke run")
    p.add_argument("--clip", default="openclip:ViT-B-32", help="model reference for search")
    p.add_argument("--coca", default="openclip:coca_ViT-B-32", help="model reference for captions")
    args = p.parse_args(argv)
    if args.device == "auto" and not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU; nothing run.")
        return
    home = Path(tempfile.mkdtemp(prefix="xmodal-gpu-"))
    try:
        embed_rate, rows, caps = measure(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # two imported models and the images: gigabytes
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"no GPU (device {args.device})"

    table = "\n".join(
        f"| {r['clients']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['failed']} |" for r in rows
    )
    write_section(
        args.out,
        "gpu",
        f"""## GPU device check (bench/gpu.sh)

{gpu}, torch {torch.__version__}, device {args.device}; {args.clip} / {args.coca} with random weights.

- index build: {args.images} synthetic 256 px JPEGs at **{embed_rate:.0f} images/s** (decode included)
- /v1/caption (CoCa decoder, our beam search, beam 3): **{caps:.1f} captions/s** from one client

| clients | text searches/s | p50 ms | p99 ms | failed |
|---|---|---|---|---|
{table}
""",
    )
    print(
        f"embed {embed_rate:.0f} img/s, captions {caps:.1f}/s, search {[round(r['rps']) for r in rows]} q/s"
    )


if __name__ == "__main__":
    main()
