"""index.build: auto factory choice, approximate indexes vs exact search, clear errors."""

import numpy as np
import pytest

from index.build import AUTO_FLAT_MAX, auto_factory, build_faiss
from training.errors import XModalError


def _clustered(n, dim=32, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.8 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_auto_is_flat_when_small_and_refined_ivf_pq_when_large():
    assert auto_factory(AUTO_FLAT_MAX, 512) == ("Flat", "")
    assert auto_factory(AUTO_FLAT_MAX + 1, 512)[0].startswith("IVF512,PQ64,")
    factory, params = auto_factory(1_000_000, 384)
    assert factory == "IVF1024,PQ48,RFlat"
    assert "nprobe" in params and "k_factor_rf" in params


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF32,Flat", "IVF16,PQ8,RFlat"])
def test_factories_agree_with_exact_search(factory):
    import faiss

    xb = _clustered(3000)
    xq = _clustered(50, seed=1)
    index, params, resolved = build_faiss(xb, factory, progress=False)
    assert resolved == factory and index.ntotal == len(xb)
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    _, got = index.search(xq, 10)
    exact = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)])
    assert recall >= (0.999 if factory == "Flat" else 0.9), recall


def test_bad_factory_and_too_few_training_vectors_are_clear_errors():
    xb = _clustered(100)
    with pytest.raises(XModalError, match="bad FAISS factory string 'IVFx'"):
        build_faiss(xb, "IVFx", progress=False)
    with pytest.raises(XModalError, match="'IVF256,Flat' cannot be trained on 100 vectors"):
        build_faiss(xb, "IVF256,Flat", progress=False)
