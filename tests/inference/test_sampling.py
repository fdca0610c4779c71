"""The sampler on crafted logits: temperature, top-k, top-p, repetition penalty, seeds."""

from __future__ import annotations

import pytest
import torch

from inference.params import SamplingParams
from inference.sampling import sample_next

# --- sample_next on crafted logits --------------------------------------------------------------


def _logits(values: dict[int, float], size: int = 10, rest: float = -1e9) -> torch.Tensor:
    logits = torch.full((size,), rest)
    for token, value in values.items():
        logits[token] = value
    return logits


def _draws(logits: torch.Tensor, params: SamplingParams, n: int = 300, seed: int = 0) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return [sample_next(logits, params, generator) for _ in range(n)]


def test_temperature_zero_is_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -5.0])
    assert sample_next(logits, SamplingParams(temperature=0.0), None) == 1
    # top_k and top_p do not matter when greedy
    assert sample_next(logits, SamplingParams(temperature=0.0, top_k=1, top_p=0.1), None) == 1


def test_low_temperature_concentrates_high_spreads() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0])
    assert set(_draws(logits, SamplingParams(temperature=0.05))) == {0}
    assert set(_draws(logits, SamplingParams(temperature=5.0))) == {0, 1, 2}


def test_temperature_one_follows_softmax() -> None:
    logits = torch.tensor([1.0, 0.0, -1.0])
    draws = _draws(logits, SamplingParams(temperature=1.0), n=3000)
    expected = torch.softmax(logits, dim=-1).tolist()
    for token, probability in enumerate(expected):
        assert abs(draws.count(token) / len(draws) - probability) < 0.04


def test_top_k_keeps_only_the_k_best() -> None:
    logits = torch.tensor([0.5, 0.4, 0.3, 0.2, 0.1])
    assert set(_draws(logits, SamplingParams(temperature=1.0, top_k=1))) == {0}
    assert set(_draws(logits, SamplingParams(temperature=1.0, top_k=2))) == {0, 1}
    assert set(_draws(logits, SamplingParams(temperature=1.0, top_k=0))) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("top_p", "kept"), [(0.45, {0}), (0.75, {0, 1}), (0.85, {0, 1, 2}), (1.0, {0, 1, 2, 3})]
)
def test_top_p_keeps_the_smallest_nucleus(top_p: float, kept: set[int]) -> None:
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert set(_draws(logits, SamplingParams(temperature=1.0, top_p=top_p), n=600)) == kept


def test_top_p_applies_after_temperature() -> None:
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    # At a low temperature token 0 alone holds more than 0.75 of the mass.
    assert set(_draws(logits, SamplingParams(temperature=0.3, top_p=0.75))) == {0}


def test_repetition_penalty_divides_positive_logits() -> None:
    logits = _logits({3: 5.0, 4: 4.0})
    assert sample_next(logits, SamplingParams(temperature=0.0), None, [3]) == 3
    assert sample_next(logits, SamplingParams(temperature=0.0, repetition_penalty=2.0), None, [3]) == 4


def test_repetition_penalty_multiplies_negative_logits() -> None:
    logits = _logits({0: -1.0, 1: -1.5})
    assert sample_next(logits, SamplingParams(temperature=0.0, repetition_penalty=2.0), None, [0]) == 1


def test_repetition_penalty_counts_a_token_once() -> None:
    # 5.0 / 1.5 = 3.33 still beats 3.0; penalised twice (2.22) it would not.
    logits = _logits({3: 5.0, 4: 3.0})
    params = SamplingParams(temperature=0.0, repetition_penalty=1.5)
    assert sample_next(logits, params, None, [3, 3, 3]) == 3
    assert sample_next(logits, params, None, torch.tensor([3, 3])) == 3


def test_repetition_penalty_one_and_no_history_change_nothing() -> None:
    logits = _logits({3: 5.0, 4: 4.0})
    assert sample_next(logits, SamplingParams(temperature=0.0, repetition_penalty=1.0), None, [3]) == 3
    assert sample_next(logits, SamplingParams(temperature=0.0, repetition_penalty=2.0), None, []) == 3


def test_sample_next_does_not_modify_the_logits() -> None:
    logits = _logits({3: 5.0, 4: 4.0})
    before = logits.clone()
    params = SamplingParams(temperature=0.5, top_k=2, top_p=0.9, repetition_penalty=1.3)
    sample_next(logits, params, torch.Generator().manual_seed(0), [3, 4])
    assert torch.equal(logits, before)


def test_same_generator_seed_same_draws() -> None:
    logits = torch.zeros(1000)
    params = SamplingParams(temperature=1.0)
    assert _draws(logits, params, n=20, seed=9) == _draws(logits, params, n=20, seed=9)
    assert _draws(logits, params, n=20, seed=9) != _draws(logits, params, n=20, seed=10)


def test_half_precision_logits_are_accepted() -> None:
    logits = torch.tensor([0.0, 2.0, 1.0], dtype=torch.bfloat16)
    assert sample_next(logits, SamplingParams(temperature=0.0), None) == 1
    assert (
        sample_next(logits, SamplingParams(temperature=1.0, top_k=1), torch.Generator().manual_seed(0)) == 1
    )
