"""Indexing benchmark: the whole job vs the model alone, and FAISS index types at 100k and 1M vectors.

    python bench/index.py [--images 128] [--batch-size 32] [--sizes 100000,1000000] [--dim 384]

1. Job throughput: `index.runner.run_job` (DataLoader decode workers, batched embedding, shard
   writes) on the first N images of a prepared corpus, against the model forward alone on the same
   images, pre-decoded, at the same batch size. Target: job >= 0.85 x model-only.
2. FAISS: Flat, HNSW32 and IVF-PQ + exact re-ranking (what `auto` picks above 200k) on synthetic
   clustered unit vectors (2,000 Gaussian clusters: cosine ~0.5 within a cluster, ~0 across);
   build time, index size, search latency, recall@10 against exact search. Target: auto >= 0.95.

Results go between <!-- bench:index --> and <!-- /bench:index --> in BENCHMARKS.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section  # noqa: E402
from index.build import auto_factory, build_faiss  # noqa: E402
from index.readers import read_sources  # noqa: E402
from index.runner import JobConfig, run_job  # noqa: E402


def job_vs_model(corpus: str, model_name: str, n: int, batch_size: int, workers: int) -> dict:
    """Items/s of the whole job and of the bare forward pass on the same n images."""
    from PIL import Image

    from training.data.corpora import corpus_manifest
    from training.factory import create_model

    model = create_model(model_name).eval()
    model.fingerprint = f"bench-{model_name}"  # not saved: run_job only records it
    records = [r for r in read_sources(manifest=corpus_manifest(corpus))[0] if r.media == "image"][:n]
    tensors = torch.stack([model.preprocess(Image.open(r.path).convert("RGB")) for r in records])
    forward = [_forward_s(model, tensors, batch_size) for _ in range(2)]  # a warm-up pass, then 'before'
    with tempfile.TemporaryDirectory() as root:
        cfg = JobConfig(batch_size, workers, factory="Flat")
        t0 = time.perf_counter()
        report = run_job("bench", model, records, [f"corpus:{corpus}"], cfg, root=Path(root), progress=False)
        job_wall = time.perf_counter() - t0
    forward.append(_forward_s(model, tensors, batch_size))
    # the host is shared: compare the job with the model measured right before and right after it
    model_rate = n / np.mean(forward[1:])
    return {
        "corpus": corpus,
        "model": model_name,
        "images": n,
        "batch_size": batch_size,
        "workers": workers,
        "job_items_per_s": report["items_per_s"],
        "job_wall_s": round(job_wall, 1),
        "model_items_per_s": round(model_rate, 2),
        "ratio": round(report["items_per_s"] / model_rate, 3),
        "timings": {k: round(v, 2) for k, v in report["timings"].items()},
    }


def _forward_s(model, tensors: torch.Tensor, batch_size: int) -> float:
    """Seconds for the bare forward pass over pre-decoded images, batch by batch."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        for i in range(0, len(tensors), batch_size):
            model.encode_image(tensors[i : i + batch_size], normalize=True)
        return time.perf_counter() - t0


def clustered(
    n: int, dim: int, rng: np.random.Generator, centres: np.ndarray, block: int = 100_000
) -> np.ndarray:
    """Unit vectors: a random cluster centre plus isotropic noise of the same scale."""
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, block):
        m = min(block, n - i)
        x = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, dim), dtype=np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_topk(xb: np.ndarray, xq: np.ndarray, k: int) -> np.ndarray:
    """Ground truth with torch matmul (faster here than FAISS Flat, see DESIGN.md), blockwise."""
    q = torch.from_numpy(xq)
    best_s, best_i = None, None
    for i in range(0, len(xb), 200_000):
        s, idx = (q @ torch.from_numpy(xb[i : i + 200_000]).T).topk(k, dim=1)
        idx += i
        if best_s is None:
            best_s, best_i = s, idx
        else:
            s, j = torch.cat([best_s, s], 1).topk(k, dim=1)
            best_i, best_s = torch.gather(torch.cat([best_i, idx], 1), 1, j), s
    return best_i.numpy()


def faiss_row(name: str, factory: str, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray) -> dict:
    import faiss

    t0 = time.perf_counter()
    index, params, resolved = build_faiss(xb, factory, progress=False)
    build_s = time.perf_counter() - t0
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    with tempfile.NamedTemporaryFile(suffix=".faiss") as f:
        faiss.write_index(index, f.name)
        size = os.path.getsize(f.name)
    index.search(xq[:10], 10)  # warm-up
    t0 = time.perf_counter()
    _, got = index.search(xq, 10)
    batch_ms = (time.perf_counter() - t0) * 1000 / len(xq)
    singles = []
    for q in xq[:30]:
        t0 = time.perf_counter()
        index.search(q[None], 10)
        singles.append((time.perf_counter() - t0) * 1000)
    recall = float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth, strict=True)]))
    return {
        "n": len(xb),
        "index": name,
        "factory": resolved,
        "params": params,
        "build_s": round(build_s, 1),
        "size_mb": round(size / 2**20, 1),
        "ms_per_query_batched": round(batch_ms, 3),
        "ms_single_query_p50": round(float(np.median(singles)), 3),
        "recall_at_10": round(recall, 4),
    }


def faiss_table(sizes: list[int], dim: int, queries: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    rows = []
    hnsw_rate = None
    for n in sizes:
        xb = clustered(n, dim, rng, centres)
        xq = clustered(queries, dim, rng, centres)
        truth = exact_topk(xb, xq, 10)
        auto, _ = auto_factory(n, dim)
        ivfpq, _ = auto_factory(max(n, 200_001), dim)  # the large-corpus choice, also at 100k
        kinds = [("Flat", "Flat"), ("IVF-PQ + refine", ivfpq)]
        projected = n / hnsw_rate if hnsw_rate else 0
        if projected < 300:
            kinds.insert(1, ("HNSW32", "HNSW32"))
        for name, factory in kinds:
            row = faiss_row(name, factory, xb, xq, truth)
            row["auto"] = factory == auto
            rows.append(row)
            print(json.dumps(row), flush=True)
            if factory == "HNSW32":
                hnsw_rate = n / max(row["build_s"], 1e-3)
        if projected >= 300:
            rows.append(
                {
                    "n": n,
                    "index": "HNSW32",
                    "factory": "HNSW32",
                    "skipped": f"projected build {projected:.0f} s",
                }
            )
        del xb
    return rows


def to_markdown(job: dict | None, table: list[dict], env: str) -> str:
    lines = ["", "### Indexing (`bench/index.py`)", "", env, ""]
    if job:
        ok = "meets" if job["ratio"] >= 0.85 else "misses"
        lines += [
            f"**Job vs model forward** ({job['model']}, {job['images']} {job['corpus']} images, "
            f"batch {job['batch_size']}, {job['workers']} decode workers): "
            f"job **{job['job_items_per_s']} items/s**, model alone "
            f"**{job['model_items_per_s']} items/s**, ratio **{job['ratio']}** ({ok} the 0.85 target). "
            f"Stage seconds: {', '.join(f'{k} {v}' for k, v in job['timings'].items())}.",
            "",
        ]
    lines += [
        "| vectors | index | factory | build s | size MB | ms/query (batched) | ms single query (p50) "
        "| recall@10 | auto |",
        "|---:|---|---|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in table:
        if "skipped" in r:
            lines.append(
                f"| {r['n']:,} | {r['index']} | {r['factory']} | not run: {r['skipped']} | | | | | |"
            )
            continue
        fac = r["factory"] + (f" ({r['params']})" if r["params"] else "")
        lines.append(
            f"| {r['n']:,} | {r['index']} | {fac} | {r['build_s']} | {r['size_mb']} | "
            f"{r['ms_per_query_batched']} | {r['ms_single_query_p50']} | {r['recall_at_10']} | "
            f"{'yes' if r['auto'] else ''} |"
        )
    autos = [r for r in table if r.get("auto")]
    if autos:
        worst = min(r["recall_at_10"] for r in autos)
        lines += [
            "",
            f"`auto` recall@10 >= {worst} at every size "
            f"({'meets' if worst >= 0.95 else 'misses'} the 0.95 target).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="openclipart")
    p.add_argument(
        "--model", default="lit-effnet-minilm", help="registry name (pretrained towers load offline)"
    )
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--skip-job", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = p.parse_args(argv)

    job = (
        None
        if args.skip_job
        else job_vs_model(args.corpus, args.model, args.images, args.batch_size, args.workers)
    )
    if job:
        print(json.dumps(job), flush=True)
    table = faiss_table([int(s) for s in args.sizes.split(",")], args.dim, args.queries)
    env = (
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} CPU cores (shared), torch "
        f"{torch.__version__}, faiss {__import__('faiss').__version__}; "
        f"vectors dim {args.dim}, {args.queries} queries."
    )
    write_section(args.out, "index", to_markdown(job, table, env))


if __name__ == "__main__":
    main()
