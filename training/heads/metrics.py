"""Caption metrics as the COCO caption evaluation defines them (pycocoevalcap), on `words()` tokens;
tests/training/test_heads_metrics_coco.py checks both against pycocoevalcap's own scorers.

    bleu4(hyps, refs)  corpus BLEU-4: clipped n-gram precisions summed over the corpus, geometric mean,
                       brevity penalty against the closest reference length
    cider(hyps, refs)  CIDEr-D: tf-idf n-gram vectors (n = 1..4, idf from the references), clipped
                       cosine, Gaussian length penalty (sigma 6), times 10; an exact match of a caption
                       whose n-grams are rare scores 10

hyps: one caption per image; refs: the reference captions of each image.
"""

import math
from collections import Counter

from training.heads.caption import words

N = 4


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu4(hyps: list[str], refs: list[list[str]]) -> float:
    """Corpus-level BLEU-4 in [0, 1]; 0 when some n-gram order has no match at all."""
    matched, total = [0] * N, [0] * N
    hyp_len = ref_len = 0
    for hyp, rs in zip(hyps, refs, strict=True):
        h, rt = words(hyp), [words(r) for r in rs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rt)[1]  # closest length, shorter on ties
        for n in range(1, N + 1):
            counts = _ngrams(h, n)
            best = Counter()
            for r in rt:
                best |= _ngrams(r, n)  # max count of each n-gram over the references
            matched[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            total[n - 1] += sum(counts.values())
    if hyp_len == 0 or min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / N
    brevity = min(0.0, 1 - ref_len / hyp_len)
    return math.exp(log_p + brevity)


def _tfidf(tokens: list[str], df: Counter, log_docs: float) -> tuple[list[dict], list[float], int]:
    """Per order n: {ngram: tf * idf}, its L2 norm; plus the length CIDEr-D compares (bigram count,
    as pycocoevalcap computes it)."""
    vecs, norms, length = [], [], 0
    for n in range(1, N + 1):
        v = {g: tf * (log_docs - math.log(max(1.0, df[g]))) for g, tf in _ngrams(tokens, n).items()}
        vecs.append(v)
        norms.append(math.sqrt(sum(x * x for x in v.values())))
        if n == 2:
            length = sum(_ngrams(tokens, n).values())
    return vecs, norms, length


def cider(hyps: list[str], refs: list[list[str]], sigma: float = 6.0) -> float:
    """Corpus CIDEr-D: the mean of per-image scores (see cider_per_image)."""
    scores = cider_per_image(hyps, refs, sigma)
    return sum(scores) / len(scores) if scores else 0.0


def cider_per_image(hyps: list[str], refs: list[list[str]], sigma: float = 6.0) -> list[float]:
    """CIDEr-D of each hypothesis against its references; idf comes from all images' references."""
    ref_tokens = [[words(r) for r in rs] for rs in refs]
    df = Counter(
        g for rt in ref_tokens for g in {g for r in rt for n in range(1, N + 1) for g in _ngrams(r, n)}
    )
    log_docs = math.log(max(1.0, float(len(refs))))
    out = []
    for hyp, rt in zip(hyps, ref_tokens, strict=True):
        hv, hn, hl = _tfidf(words(hyp), df, log_docs)
        total = 0.0
        for r in rt:
            rv, rn, rl = _tfidf(r, df, log_docs)
            penalty = math.exp(-((hl - rl) ** 2) / (2 * sigma**2))
            for n in range(N):
                dot = sum(min(x, rv[n].get(g, 0.0)) * rv[n].get(g, 0.0) for g, x in hv[n].items())
                if hn[n] and rn[n]:
                    total += dot / (hn[n] * rn[n]) * penalty / N
        out.append(10.0 * total / max(len(rt), 1))
    return out
