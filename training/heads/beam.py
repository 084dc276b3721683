"""Beam search for any autoregressive decoder given as a step function.

    step(ids (B*K, t)) -> log-probabilities of the next token (B*K, V)

Row b*K + j is beam j of batch item b. Finished hypotheses are scored by their mean token
log-probability (length penalty 1, as in common captioning decoders), so short captions are not favoured;
the K best finished ones are kept.
"""

from collections.abc import Callable

import torch


def beam_search(
    step: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    bos: int,
    eos: int,
    beam_size: int,
    max_len: int,
    k: int = 1,
    banned: tuple[int, ...] = (),
    device: torch.device | str = "cpu",
) -> list[list[tuple[list[int], float]]]:
    """Returns, per batch item, the k best finished sequences (token ids without bos/eos) with scores,
    best first. Sequences hold at most `max_len` tokens; at that length only <eos> may follow.
    `banned` token ids (padding, <bos>, <unk>) are never produced."""
    kk = beam_size
    ids = torch.full((batch * kk, 1), bos, dtype=torch.long, device=device)
    scores = torch.full((batch, kk), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one so the first step does not pick duplicates
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(batch)]
    for t in range(max_len + 1):
        logp = step(ids).float()  # (B*K, V)
        if banned:
            logp[:, list(banned)] = float("-inf")
        if t == max_len:  # out of room: the only move left is to stop
            eos_only = torch.full_like(logp, float("-inf"))
            eos_only[:, eos] = logp[:, eos]
            logp = eos_only
        vocab = logp.shape[-1]
        cand = (scores.unsqueeze(-1) + logp.view(batch, kk, vocab)).view(batch, -1)  # (B, K*V)
        top_s, top_i = cand.topk(2 * kk, dim=-1)  # 2K: enough to refill K live beams after K finish
        rows, tokens, new_scores = [], [], torch.full_like(scores, float("-inf"))
        for b in range(batch):
            live = 0
            for rank, (s, i) in enumerate(zip(top_s[b].tolist(), top_i[b].tolist(), strict=True)):
                if s == float("-inf") or live == kk:
                    break
                beam, tok = divmod(i, vocab)
                if tok == eos:
                    if rank < kk:  # only endings that rank among the K best candidates count
                        seq = ids[b * kk + beam, 1:].tolist()
                        finished[b] = sorted([*finished[b], (seq, s / (len(seq) + 1))], key=lambda h: -h[1])[
                            :kk
                        ]
                    continue
                rows.append(b * kk + beam)
                tokens.append(tok)
                new_scores[b, live] = s
                live += 1
            while live < kk:  # pad with dead beams (score -inf) so the tensor shape stays (B*K, t)
                rows.append(b * kk)
                tokens.append(eos)
                live += 1
        ids = torch.cat([ids[rows], torch.tensor(tokens, device=device).unsqueeze(1)], dim=1)
        scores = new_scores
        # stop when no live beam, even ending now, would beat the K-th finished one (HF's heuristic)
        best_live = (scores.max(-1).values / ids.shape[1]).tolist()
        if all(len(f) == kk and f[-1][1] >= bl for f, bl in zip(finished, best_live, strict=True)):
            break
    return [sorted(f, key=lambda h: -h[1])[:k] for f in finished]
