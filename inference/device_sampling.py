"""Sampling inside the step, on the device: per-row parameters as tensors, noise from a counter hash.

The paged engine samples every row of a step in one call that never reads a
tensor back to the host, so a whole decode step (embedding to sampled ids)
can be captured in a CUDA graph. Parameters arrive as one tensor per
parameter with a value per row (`RowSampling`); what the host already knows
about the batch (nobody samples, nobody filters, no penalty) only skips
work, and a captured step keeps every path on.

The noise is not drawn from a stateful generator: the uniform number of
vocabulary id ``v`` for the ``n``-th generated id of a request with seed
``s`` is a hash of ``(s, n, v)`` computed with integer torch ops (murmur3's
32-bit finaliser). So a seed gives the same tokens alone or in any batch,
joined at once or later, recomputed after a preemption, on the CPU or in a
graph; and nothing has to be stepped or copied when rows come and go.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Seeds are 32-bit: what clients may give (params: seed in [0, 2**32 - 1]) and what submit draws.
SEED_LIMIT = 2**32
_MASK32 = 0xFFFFFFFF


@dataclass
class RowSampling:
    """One step's sampling parameters, one value per row (all shape [B], on the logits' device)."""

    temperature: torch.Tensor  # float32; 0 = greedy
    top_k: torch.Tensor  # long; 0 = off
    top_p: torch.Tensor  # float32; 1 = off
    penalty: torch.Tensor  # float32; 1 = off
    seed: torch.Tensor  # long, in [0, 2**32)
    step: torch.Tensor  # long: index of the id being sampled in its reply (0 for the first)


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    # (x * constant) mod 2**32 for x < 2**32, in halves so that no int64 product overflows.
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """murmur3's finaliser: a bijection on 32-bit values whose every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def uniform_noise(seed: torch.Tensor, step: torch.Tensor, vocab: int) -> torch.Tensor:
    """Uniform numbers in (0, 1), shape [B, vocab], a pure function of (seed, step, vocabulary id)."""
    row = _fmix32(_fmix32(seed & _MASK32) ^ _fmix32((step + 0x632BE5AB) & _MASK32))
    column = _fmix32(torch.arange(vocab, dtype=torch.long, device=seed.device) + 0x7F4A7C15)
    bits = _fmix32(row[:, None] ^ column[None, :]) >> 8  # 24 bits: what a float32 holds exactly
    return (bits.float() + 0.5) * (1.0 / (1 << 24))


def apply_penalty(scores: torch.Tensor, penalty: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """transformers' repetition penalty on the ids marked in `seen`: a penalty > 1 makes them less likely."""
    factor = penalty[:, None]
    penalized = torch.where(scores > 0, scores / factor, scores * factor)
    return torch.where(seen, penalized, scores)


def filter_scores(scores: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set to -inf what top-k (ties at the k-th kept) and top-p (the best always kept) leave out, per row."""
    vocab = scores.shape[-1]
    wants_k = (top_k > 0) & (top_k < vocab)
    wants_p = top_p < 1.0
    ordered, order = scores.sort(dim=-1, descending=True)
    k = torch.where(wants_k, top_k, torch.full_like(top_k, vocab))
    kth_best = ordered.gather(1, (k - 1)[:, None])
    scores = scores.masked_fill(scores < kth_best, float("-inf"))
    ordered = ordered.masked_fill(ordered < kth_best, float("-inf"))
    probs = torch.softmax(ordered, dim=-1)
    # Drop a token when the likelier ones already hold top_p of the mass.
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop_ordered = (mass_before >= top_p[:, None]) & wants_p[:, None]
    drop = torch.zeros_like(drop_ordered).scatter(1, order, drop_ordered)
    return scores.masked_fill(drop, float("-inf"))


def sample(
    logits: torch.Tensor,
    rows: RowSampling,
    seen: torch.Tensor | None = None,
    *,
    sampled: bool = True,
    filtered: bool = True,
) -> torch.Tensor:
    """The next id of every row, shape [B], from `logits` [B, vocab]; no host sync.

    Order as in transformers: repetition penalty (on the ids in the bool
    mask `seen`, when given), temperature (0: argmax), top-k, top-p, then
    the draw (Gumbel-max: argmax of the scores plus -log(-log(u)) is an
    exact draw from their softmax). `sampled=False` says no row has a
    temperature, `filtered=False` that none has top-k or top-p: work skipped.
    """
    scores = logits.float()
    if seen is not None:
        scores = apply_penalty(scores, rows.penalty, seen)
    greedy = scores.argmax(dim=-1)
    if not sampled:
        return greedy
    is_greedy = rows.temperature == 0
    scaled = scores / torch.where(is_greedy, torch.ones_like(rows.temperature), rows.temperature)[:, None]
    if filtered:
        scaled = filter_scores(scaled, rows.top_k, rows.top_p)
    gumbel = -torch.log(-torch.log(uniform_noise(rows.seed, rows.step, scores.shape[-1])))
    return torch.where(is_greedy, greedy, (scaled + gumbel).argmax(dim=-1))
