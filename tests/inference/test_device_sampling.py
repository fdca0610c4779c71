"""Sampling on the device: per-row parameters, noise from (seed, step, vocabulary id), no host sync."""

from __future__ import annotations

import pytest
import torch

from inference.device_sampling import RowSampling, sample, uniform_noise
from inference.params import SamplingParams
from inference.sampling import RowParams, sample_batch

VOCAB = 500


def _rows(n: int, **values: float | int) -> RowSampling:
    defaults = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "penalty": 1.0, "seed": 0, "step": 0}
    defaults.update(values)
    return RowSampling(
        temperature=torch.full((n,), float(defaults["temperature"])),
        top_k=torch.full((n,), int(defaults["top_k"]), dtype=torch.long),
        top_p=torch.full((n,), float(defaults["top_p"])),
        penalty=torch.full((n,), float(defaults["penalty"])),
        seed=torch.full((n,), int(defaults["seed"]), dtype=torch.long),
        step=torch.full((n,), int(defaults["step"]), dtype=torch.long),
    )


def _stack(*rows: RowSampling) -> RowSampling:
    fields = ("temperature", "top_k", "top_p", "penalty", "seed", "step")
    return RowSampling(**{f: torch.cat([getattr(r, f) for r in rows]) for f in fields})


def test_noise_is_uniform_in_the_open_interval_and_a_function_of_its_counters() -> None:
    seeds = torch.tensor([0, 1, 2**32 - 1, 12345])
    steps = torch.tensor([0, 0, 7, 3])
    noise = uniform_noise(seeds, steps, 4096)
    assert noise.min() > 0 and noise.max() < 1
    assert abs(noise.mean().item() - 0.5) < 0.01
    assert torch.equal(noise[2:3], uniform_noise(seeds[2:3], steps[2:3], 4096))
    assert not torch.equal(noise[0], noise[1])  # another seed
    assert not torch.equal(noise[0], uniform_noise(seeds[:1], steps[:1] + 1, 4096)[0])  # another step


def test_a_row_draws_the_same_id_alone_or_anywhere_in_a_batch() -> None:
    logits = torch.randn(6, VOCAB, generator=torch.Generator().manual_seed(0))
    rows = _stack(*(_rows(1, seed=100 + i, step=i, top_k=50 * (i % 2), top_p=0.9) for i in range(6)))
    together = sample(logits, rows)
    for i in range(6):
        one = _stack(_rows(1, seed=100 + i, step=i, top_k=50 * (i % 2), top_p=0.9))
        assert sample(logits[i : i + 1], one)[0] == together[i]
    # Reversed order, and beside unrelated greedy rows: the same ids again.
    assert torch.equal(
        sample(
            logits.flip(0),
            _stack(
                *(_rows(1, seed=105 - i, step=5 - i, top_k=50 * ((5 - i) % 2), top_p=0.9) for i in range(6))
            ),
        ),
        together.flip(0),
    )


def test_draws_follow_the_softmax() -> None:
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 8000
    logits = probs.log().expand(n, 4)
    rows = _rows(n)
    rows.seed = torch.arange(n, dtype=torch.long)
    counts = torch.bincount(sample(logits, rows), minlength=4).float() / n
    assert torch.allclose(counts, probs, atol=0.02)


def test_greedy_rows_take_the_argmax_beside_sampled_rows() -> None:
    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(1))
    rows = _rows(4, temperature=1.5)
    rows.temperature[::2] = 0.0
    ids = sample(logits, rows)
    assert torch.equal(ids[::2], logits[::2].argmax(-1))
    assert torch.equal(sample(logits, _rows(4, temperature=0.0), sampled=False), logits.argmax(-1))


@pytest.mark.parametrize("values", [{"top_k": 1}, {"top_p": 1e-6}])
def test_filters_that_keep_one_token_give_the_argmax(values: dict[str, float]) -> None:
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sample(logits, _rows(3, temperature=2.0, seed=9, **values)), logits.argmax(-1))


def test_top_k_keeps_draws_among_the_k_best() -> None:
    n = 2000
    logits = torch.randn(1, VOCAB, generator=torch.Generator().manual_seed(3)).expand(n, VOCAB)
    rows = _rows(n, top_k=5, temperature=5.0)
    rows.seed = torch.arange(n, dtype=torch.long)
    drawn = set(sample(logits, rows).tolist())
    assert drawn == set(logits[0].topk(5).indices.tolist())


def test_the_penalty_matches_the_host_sampler() -> None:
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(4))
    seen = torch.zeros(3, VOCAB, dtype=torch.bool)
    seen[:, logits.argmax(-1)] = True
    ours = sample(logits, _rows(3, temperature=0.0, penalty=1.8), seen, sampled=False)
    host = sample_batch(
        logits, RowParams([SamplingParams(temperature=0.0, repetition_penalty=1.8)] * 3, "cpu"), [], seen
    )
    assert torch.equal(ours, host)
    assert not torch.equal(ours, logits.argmax(-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_never_syncs_with_the_host_on_cuda() -> None:
    logits = torch.randn(8, VOCAB, device="cuda")
    rows = RowSampling(**{k: v.cuda() for k, v in vars(_rows(8, top_k=20, top_p=0.9, penalty=1.2)).items()})
    seen = torch.zeros(8, VOCAB, dtype=torch.bool, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        sample(logits, rows, seen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
