"""Choosing the next token for every reply in a batch, each with its own parameters.

One call samples a whole batch: the repetition penalty, temperature, top-k
and top-p are applied as tensors with one value per row. The draw itself is
the Gumbel-max trick with noise from each row's own seeded generator, so a
row's tokens depend only on its logits and its seed, never on which other
replies share the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inference.device_sampling import apply_penalty, filter_scores
from inference.params import SamplingParams


def check_params(params: SamplingParams) -> None:
    """Raise ValueError for parameters the sampler cannot work with."""
    if not params.temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {params.temperature!r}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {params.top_p!r}")
    if params.top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {params.top_k!r}")
    if not params.repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {params.repetition_penalty!r}")
    if params.max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {params.max_tokens!r}")


def new_generator(params: SamplingParams, device: torch.device | str) -> torch.Generator:
    """A reply's own random stream: seeded when asked, fresh entropy otherwise."""
    generator = torch.Generator(device=device)
    if params.seed is None:
        generator.seed()  # never the shared global RNG
    else:
        generator.manual_seed(params.seed)
    return generator


class RowParams:
    """The sampling parameters of a batch, one row per reply, as tensors."""

    def __init__(self, params: Sequence[SamplingParams], device: torch.device | str) -> None:
        self.temperature = torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device)
        self.top_k = torch.tensor([p.top_k for p in params], dtype=torch.long, device=device)
        self.top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device)
        self.penalty = torch.tensor(
            [p.repetition_penalty for p in params], dtype=torch.float32, device=device
        )
        self.any_penalty = any(p.repetition_penalty != 1.0 for p in params)
        self.any_sampled = any(p.temperature != 0 for p in params)


def sample_batch(
    logits: torch.Tensor,
    rows: RowParams,
    generators: Sequence[torch.Generator],
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next token ids, shape ``[batch]``, for ``logits`` of shape ``[batch, vocab]``.

    Order as in transformers: repetition penalty (on the ids marked in the
    boolean ``seen`` mask), then temperature (0 = greedy argmax), top-k (ties
    at the k-th score kept), top-p (the smallest set holding top_p of the mass;
    the best token always stays).
    """
    scores = logits.float()
    if rows.any_penalty and seen is not None:
        scores = apply_penalty(scores, rows.penalty, seen)
    choice = scores.argmax(dim=-1)
    if not rows.any_sampled:
        return choice
    sampled = (rows.temperature != 0).nonzero().flatten()
    picked = _filtered(
        scores[sampled] / rows.temperature[sampled, None], rows.top_k[sampled], rows.top_p[sampled]
    )
    noise = torch.stack([_gumbel(picked.shape[-1], generators[i], picked.device) for i in sampled.tolist()])
    choice[sampled] = (picked + noise).argmax(dim=-1)
    return choice


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    previous_ids: torch.Tensor | Sequence[int] | None = None,
) -> int:
    """One row's next token id from ``logits`` of shape ``[vocab]``: sample_batch of one."""
    seen = None
    if previous_ids is not None and len(previous_ids) > 0:
        ids = torch.as_tensor(previous_ids, dtype=torch.long, device=logits.device)
        seen = torch.zeros(1, logits.shape[-1], dtype=torch.bool, device=logits.device)
        seen[0, ids] = True
    generator = generator or new_generator(params, logits.device)
    return int(sample_batch(logits[None, :], RowParams([params], logits.device), [generator], seen)[0])


def _filtered(scores: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set to -inf what top-k and top-p leave out, row by row (skipped when no row asks)."""
    vocab = scores.shape[-1]
    if not bool(((top_k > 0) & (top_k < vocab)).any() or (top_p < 1.0).any()):
        return scores
    return filter_scores(scores, top_k, top_p)


def _gumbel(size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    # argmax(scores + Gumbel noise) is an exact draw from softmax(scores).
    uniform = torch.rand(size, generator=generator, device=device).clamp_(min=1e-20)
    return -torch.log(-torch.log(uniform))
