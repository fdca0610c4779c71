"""Continuous batching: replies join and leave between steps and each gets what it gets alone."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from inference.engine import Engine
from inference.paged_engine import PagedEngine
from inference.params import SamplingParams
from inference.tiny import build_tiny_model
from tests.support.engines import ENGINE_KINDS, build_engine, step_model

# Prompts of different lengths, so rows are left-padded differently in the batch.
PROMPTS = [
    [1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793],
    [1, 733, 16289, 28793, 1824, 349, 272, 5565, 302, 4843, 28804, 733, 28748, 16289, 28793],
    [1, 733, 16289, 28793, 315, 733, 28748, 16289, 28793],
    [1, *range(1000, 1040), 733, 28748, 16289, 28793],
    [1, 733, 16289, 28793, 28705, 733, 28748, 16289, 28793, 264],
    [1, 5000, 6000],
]


AnyEngine = Engine | PagedEngine


@pytest.fixture(scope="module", params=ENGINE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def engine(kind: str) -> AnyEngine:
    return build_engine(kind, max_batch=8)


def run_together(engine: AnyEngine, jobs: list[tuple[list[int], SamplingParams]], stagger_s: float = 0.0):
    """Each job in its own thread, started `stagger_s` apart so later ones join a running batch."""
    results: list[list[int] | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            time.sleep(index * stagger_s)
            prompt, params = jobs[index]
            results[index] = list(engine.generate(prompt, params))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("stagger_s", [0.0, 0.03])
def test_greedy_in_a_batch_equals_alone(engine: AnyEngine, stagger_s: float) -> None:
    # Different lengths too, so rows leave the batch at different steps.
    jobs = [(p, SamplingParams(temperature=0.0, max_tokens=12 + 4 * i)) for i, p in enumerate(PROMPTS)]
    alone = [list(engine.generate(p, params)) for p, params in jobs]
    assert run_together(engine, jobs, stagger_s) == alone


def test_a_seed_gives_the_same_tokens_alone_or_in_a_batch(engine: AnyEngine) -> None:
    params = [
        SamplingParams(temperature=0.8, top_p=0.9, seed=1, max_tokens=16),
        SamplingParams(temperature=1.2, top_k=50, seed=2, max_tokens=16),
        SamplingParams(temperature=0.7, repetition_penalty=1.3, seed=3, max_tokens=16),
        SamplingParams(temperature=0.0, repetition_penalty=1.5, max_tokens=16),
    ]
    jobs = list(zip(PROMPTS, params, strict=False))
    alone = [list(engine.generate(p, sp)) for p, sp in jobs]
    assert run_together(engine, jobs) == alone
    assert run_together(engine, jobs, stagger_s=0.02) == alone


def test_logits_in_a_padded_batch_match_alone_within_tolerance() -> None:
    """What the equality above rests on: padding changes the logits only by float noise."""
    model = build_tiny_model()
    short, long = PROMPTS[0], PROMPTS[3]
    with torch.inference_mode():
        alone = model(input_ids=torch.tensor([short])).logits[0, -1]
        ids = torch.zeros(2, len(long), dtype=torch.long)
        mask = torch.zeros(2, len(long), dtype=torch.long)
        ids[0, -len(short) :], mask[0, -len(short) :] = torch.tensor(short), 1
        ids[1], mask[1] = torch.tensor(long), 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batched = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[0, -1]
    assert torch.allclose(alone, batched, atol=1e-4, rtol=0)


def test_max_batch_bounds_the_batch_and_cancelling_frees_a_place(kind: str) -> None:
    engine = build_engine(kind, max_batch=2)
    long = SamplingParams(temperature=0.0, max_tokens=100_000, ignore_eos=True)
    first, second = engine.submit(PROMPTS[0], long), engine.submit(PROMPTS[1], long)
    third = engine.submit(PROMPTS[2], SamplingParams(temperature=0.0, max_tokens=3))
    first.tokens.get(timeout=30), second.tokens.get(timeout=30)
    time.sleep(0.2)
    load = engine.load()
    assert (load.active, load.waiting) == (2, 1)
    assert third.tokens.empty(), "a third reply ran in a batch of two"
    first.cancel()
    got = [third.tokens.get(timeout=30) for _ in range(3)]
    assert len(got) == 3
    second.cancel()
    deadline = time.monotonic() + 10
    while engine.load().active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.load().active == 0 and engine.load().waiting == 0


def test_an_abandoned_stream_leaves_the_batch(engine: AnyEngine) -> None:
    stream = engine.generate(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=100_000, ignore_eos=True))
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while engine.load().active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.load().active == 0


def test_ignore_eos_decodes_exactly_max_tokens(kind: str) -> None:
    engine = build_engine(kind, name="eos-always", max_batch=4, bias={2: 10.0})  # EOS, always
    assert list(engine.generate(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=9))) == []
    forced = list(engine.generate(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=9, ignore_eos=True)))
    assert forced == [2] * 9


def test_a_failing_step_fails_its_replies_and_the_engine_goes_on(engine: AnyEngine, monkeypatch) -> None:
    model = step_model(engine)
    real_forward = model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("CUDA error: device-side assert")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", flaky)
    with pytest.raises(RuntimeError, match="device-side assert"):
        list(engine.generate(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=10)))
    monkeypatch.setattr(model, "forward", real_forward)
    assert len(list(engine.generate(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=5)))) == 5
