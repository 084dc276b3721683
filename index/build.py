"""FAISS indexes from factory strings: `auto` picks by corpus size; GPUs are used when faiss sees them.

Vectors are L2-normalised, so inner product (METRIC_INNER_PRODUCT) is cosine similarity.
    build_faiss(vectors (N, D) float32, "auto" | "Flat" | "HNSW32" | "IVF1024,PQ64" ...)
        -> (cpu index, params, factory actually used)
`params` is a faiss ParameterSpace string ("nprobe=32,k_factor_rf=64"), stored in manifest.json and
applied when the index is opened.
"""

import math

import numpy as np
from tqdm import tqdm

from training.errors import XModalError

# Below this many vectors exact search is fast enough (100k x 512 IP: a few ms per query) and exact.
AUTO_FLAT_MAX = 200_000
ADD_BLOCK = 65_536  # vectors added per call, so progress shows and GPU memory stays bounded


def auto_factory(n: int, dim: int) -> tuple[str, str]:
    """Flat when small; IVF-PQ with an exact re-ranking step (RFlat) when large.

    nlist ~ sqrt(N) (power of two), PQ at dim/8 bytes per vector (must divide dim), and the top
    k * k_factor_rf PQ candidates re-scored with the stored full vectors, which is what keeps
    recall@10 near exact (see BENCHMARKS.md)."""
    if n <= AUTO_FLAT_MAX:
        return "Flat", ""
    nlist = 2 ** round(math.log2(math.sqrt(n)))
    m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0)
    factory = f"IVF{nlist},PQ{m},RFlat"
    return factory, default_params(factory)


def default_params(factory: str) -> str:
    """Search-time parameters for a factory string (a ParameterSpace string)."""
    params = []
    if "IVF" in factory:
        params.append("nprobe=32")
    if "HNSW" in factory:
        params.append("efSearch=128")
    if "RFlat" in factory or "Refine" in factory:
        params.append("k_factor_rf=64")  # measured at 1M x 384: 16 -> recall@10 0.91, 64 -> 0.997
    return ",".join(params)


def validate_factory(factory: str, dim: int) -> None:
    """Fails fast, before any embedding, on a factory string FAISS cannot parse."""
    import faiss

    if factory == "auto":
        return
    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1]
        raise XModalError(f"bad FAISS factory string {factory!r}: {msg}") from None


def _skip_polysemous_training(index) -> None:
    """faiss's factory enables polysemous training for PQ codes: minutes of CPU (measured: 95 s vs 2 s
    for PQ8 on 3k vectors) for a Hamming pre-filter that inner-product search never uses."""
    import faiss

    refine_base = getattr(faiss.downcast_index(index), "base_index", None)
    for part in (index, refine_base, faiss.try_extract_index_ivf(index)):
        if part is not None:
            part = faiss.downcast_index(part)
            if hasattr(part, "do_polysemous_training"):
                part.do_polysemous_training = False


def to_gpus(index) -> tuple[object, bool]:
    """The one GPU placement of a FAISS index: (index on all GPUs, True) when faiss-gpu sees a GPU,
    else (the CPU index, False). Guarded by get_num_gpus() > 0: index_cpu_to_all_gpus without a GPU
    returns an empty index that crashes on search. HNSW and refine wrappers have no GPU version and
    stay on the CPU."""
    import faiss

    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() <= 0:
        return index, False
    try:
        return faiss.index_cpu_to_all_gpus(index), True
    except RuntimeError:
        return index, False


def build_faiss(vectors: np.ndarray, factory: str = "auto", seed: int = 0, progress: bool = True):
    """Trains (on a sample of 40 points per centroid) and fills an index; returns a CPU index,
    its search parameter string and the resolved factory. A bad factory string raises XModalError."""
    import faiss

    n, dim = vectors.shape
    if factory == "auto":
        factory, params = auto_factory(n, dim)
    else:
        params = default_params(factory)
    validate_factory(factory, dim)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    _skip_polysemous_training(index)
    target, _ = to_gpus(index)
    if not index.is_trained:
        # k-means wants ~40 points per centroid (faiss warns below 39): the IVF's nlist, and 256 per
        # PQ sub-quantizer; more only costs training time
        ivf = faiss.try_extract_index_ivf(index)
        centroids = max(getattr(ivf, "nlist", 0), 256)
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, min(n, 40 * centroids), replace=False))]
        try:
            target.train(np.ascontiguousarray(sample, dtype=np.float32))
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[-1]
            raise XModalError(f"factory {factory!r} cannot be trained on {n} vectors ({msg})") from None
    for i in tqdm(
        range(0, n, ADD_BLOCK), desc="faiss add", unit="block", disable=not progress or n <= ADD_BLOCK
    ):
        target.add(np.ascontiguousarray(vectors[i : i + ADD_BLOCK], dtype=np.float32))
    if target is not index:
        index = faiss.index_gpu_to_cpu(target)  # the saved copy is always a CPU index
    return index, params, factory
