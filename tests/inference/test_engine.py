"""The engine: loading, the decode loop against transformers, sampling, stopping, threads."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
import torch
from transformers import MistralForCausalLM

from inference.engine import Engine
from inference.paged_engine import PagedEngine
from inference.paged_engine import load_engine as load_paged_engine
from inference.params import SamplingParams
from inference.steps import End
from inference.tiny import TINY_MODEL_NAME, build_tiny_model, tiny_config
from tests.support.engines import ENGINE_KINDS, build_engine

# "<s>[INST] Hello [/INST]" and a second one, as mistral_common v1 would give them;
# any ids in range do for a random model.
PROMPT = [1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793]
OTHER_PROMPT = [1, 733, 16289, 28793, 1824, 349, 272, 5565, 302, 4843, 28804, 733, 28748, 16289, 28793]
GREEDY = SamplingParams(temperature=0.0, max_tokens=20)
EOS = 2


AnyEngine = Engine | PagedEngine


@pytest.fixture(scope="module", params=ENGINE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def engine(kind: str) -> AnyEngine:
    if kind == "paged":
        return load_paged_engine(device="cpu", dtype="float32")  # what the worker loads by default
    return build_engine(kind, name=TINY_MODEL_NAME)


def _reference_greedy(model: MistralForCausalLM, prompt: list[int], max_new_tokens: int) -> list[int]:
    """transformers' own greedy decoding, cut before EOS as the engine does."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt]),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=EOS,
            pad_token_id=EOS,
        )
    new = out[0, len(prompt) :].tolist()
    return new[: new.index(EOS)] if EOS in new else new


# --- the model and its info -------------------------------------------------------------------


def test_default_engine_is_the_tiny_model(engine: AnyEngine) -> None:
    assert engine.info.name == TINY_MODEL_NAME
    assert engine.info.device == "cpu"
    assert engine.info.dtype == "float32"
    assert engine.info.context_length == 32768
    assert engine.info.parameters == sum(p.numel() for p in build_tiny_model().parameters())


# --- greedy decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [PROMPT, OTHER_PROMPT])
def test_greedy_equals_transformers_generate(engine: AnyEngine, prompt: list[int]) -> None:
    ours = list(engine.generate(prompt, GREEDY))
    assert ours == _reference_greedy(build_tiny_model(), prompt, GREEDY.max_tokens)
    assert len(ours) == GREEDY.max_tokens  # no EOS early: the comparison covers all 20 steps


def test_greedy_is_deterministic(engine: AnyEngine) -> None:
    assert list(engine.generate(PROMPT, GREEDY)) == list(engine.generate(PROMPT, GREEDY))


def test_greedy_ignores_the_seed(engine: AnyEngine) -> None:
    seeded = SamplingParams(temperature=0.0, max_tokens=10, seed=5)
    assert list(engine.generate(PROMPT, seeded)) == list(engine.generate(PROMPT, GREEDY))[:10]


# --- sampling through the engine ----------------------------------------------------------------


def test_same_seed_same_tokens(engine: AnyEngine) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=100, max_tokens=20, seed=1234)
    assert list(engine.generate(PROMPT, params)) == list(engine.generate(PROMPT, params))


def test_different_seeds_different_tokens(engine: AnyEngine) -> None:
    runs = {
        tuple(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=10, seed=seed)))
        for seed in (1, 2, 3)
    }
    assert len(runs) == 3


def test_no_seed_is_not_deterministic(engine: AnyEngine) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=10, seed=None)
    assert list(engine.generate(PROMPT, params)) != list(engine.generate(PROMPT, params))


def test_sampling_leaves_the_global_rng_alone(engine: AnyEngine) -> None:
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    list(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=5)))
    list(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=5, seed=3)))
    assert torch.equal(torch.rand(1), expected)


# --- the ways a reply ends ----------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [0, 1, 7])
def test_max_tokens_respected(engine: AnyEngine, max_tokens: int) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    assert len(list(engine.generate(PROMPT, params))) == max_tokens


def test_should_stop_stops_promptly(engine: AnyEngine) -> None:
    got: list[int] = []
    for token in engine.generate(PROMPT, GREEDY, should_stop=lambda: len(got) >= 3):
        got.append(token)
    assert got == list(engine.generate(PROMPT, GREEDY))[:3]


def test_should_stop_before_the_prefill(engine: AnyEngine) -> None:
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return True

    assert list(engine.generate(PROMPT, GREEDY, should_stop=stop)) == []
    assert calls == [1]


def test_should_stop_is_checked_before_every_step(engine: AnyEngine) -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    assert (
        len(list(engine.generate(PROMPT, SamplingParams(temperature=0.0, max_tokens=5), should_stop=never)))
        == 5
    )
    assert len(calls) >= 5  # at least once before each token; more while it waits


def test_eos_first_yields_nothing(kind: str) -> None:
    engine = build_engine(kind, name="forced-eos", bias={EOS: 10.0})
    assert list(engine.generate(PROMPT, GREEDY)) == []
    assert list(engine.generate(PROMPT, SamplingParams(temperature=0.7, max_tokens=5, seed=0))) == []


def test_eos_after_tokens_is_not_yielded(kind: str) -> None:
    # Token 7 wins the first step; the repetition penalty then pushes it below EOS.
    engine = build_engine(kind, name="forced", bias={7: 10.0, EOS: 9.0})
    params = SamplingParams(temperature=0.0, max_tokens=20, repetition_penalty=2.0)
    assert list(engine.generate(PROMPT, params)) == [7]


def test_context_window_ends_the_reply(kind: str) -> None:
    config = tiny_config()
    config.max_position_embeddings = len(PROMPT) + 4
    model = MistralForCausalLM(config).eval()
    engine = build_engine(kind, model, name="short-context")
    assert len(list(engine.generate(PROMPT, SamplingParams(temperature=0.0, max_tokens=50)))) == 4
    with pytest.raises(ValueError, match="context"):
        engine.generate(list(range(3, 3 + len(PROMPT) + 4)), GREEDY)


# --- bad input is refused at the call -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "params"),
    [
        ([], GREEDY),
        ([1, 32000], GREEDY),
        ([1, -1], GREEDY),
        (PROMPT, SamplingParams(temperature=-0.1)),
        (PROMPT, SamplingParams(top_p=0.0)),
        (PROMPT, SamplingParams(top_p=1.5)),
        (PROMPT, SamplingParams(top_k=-1)),
        (PROMPT, SamplingParams(repetition_penalty=0.0)),
        (PROMPT, SamplingParams(max_tokens=-1)),
    ],
)
def test_bad_input_raises_value_error_at_call(
    engine: AnyEngine, prompt: list[int], params: SamplingParams
) -> None:
    with pytest.raises(ValueError):
        engine.generate(prompt, params)


def test_inference_mode_does_not_leak_to_the_caller(engine: AnyEngine) -> None:
    stream = engine.generate(PROMPT, GREEDY)
    next(stream)
    assert not torch.is_inference_mode_enabled()
    stream.close()


# --- threads ------------------------------------------------------------------------------------


def test_concurrent_generations_match_solo_runs(engine: AnyEngine) -> None:
    sampled = SamplingParams(temperature=0.9, top_p=0.9, max_tokens=20, seed=42)
    jobs: list[tuple[list[int], SamplingParams]] = [
        (PROMPT, GREEDY),
        (OTHER_PROMPT, GREEDY),
        (PROMPT, sampled),
        (OTHER_PROMPT, sampled),
    ]
    alone = [list(engine.generate(prompt, params)) for prompt, params in jobs]
    results: list[list[int] | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def worker(index: int) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
                prompt, params = jobs[index]
                results[index] = list(engine.generate(prompt, params))
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=worker(i)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert results == alone


# --- first-step log-probabilities (the moderation judge) -----------------------------------------

CANDIDATES = [330, 365, 28741, 475]  # "▁A", "▁B", "A", "▁J": any ids in range do


def _reference_logprobs(prompt: list[int], ids: list[int]) -> list[float]:
    with torch.inference_mode():
        logits = build_tiny_model()(torch.tensor([prompt])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)[ids].tolist()


def test_first_logprobs_are_the_models_own(engine: AnyEngine) -> None:
    ours = engine.first_logprobs(PROMPT, CANDIDATES)
    assert ours == pytest.approx(_reference_logprobs(PROMPT, CANDIDATES), abs=1e-4)
    assert all(lp <= 0.0 for lp in ours) and sum(math.exp(lp) for lp in ours) <= 1.0
    assert engine.first_logprobs(PROMPT, CANDIDATES) == ours  # deterministic


def test_scoring_joins_the_batch_of_ordinary_replies() -> None:
    engine = Engine(build_tiny_model(), name="tiny")
    batch_sizes: list[int] = []
    engine.model.register_forward_hook(
        lambda _m, _args, kwargs, _out: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    with engine._wakeup:  # hold the scheduler so that both arrive before its first step
        reply = engine.submit(OTHER_PROMPT, GREEDY)
        scoring = engine.submit(PROMPT, SamplingParams(temperature=0.0, max_tokens=1), score_ids=CANDIDATES)
    tokens = []
    while not isinstance(item := reply.tokens.get(timeout=30), End):
        tokens.append(item)
    assert batch_sizes[0] == 2  # one prefill for both: the scoring request was batched
    assert scoring.first_logprobs == pytest.approx(_reference_logprobs(PROMPT, CANDIDATES), abs=1e-4)
    # The ordinary reply is what it would have been alone.
    assert tokens == _reference_greedy(build_tiny_model(), OTHER_PROMPT, GREEDY.max_tokens)


def test_scoring_joins_the_paged_engines_step_of_ordinary_replies() -> None:
    engine = build_engine("paged")
    inner, rows_per_step = engine.runner.model, []

    class Counting:
        def forward(self, batch, kv, *, check=True):  # noqa: ANN001, ANN202
            rows_per_step.append(batch.num_rows)
            return inner.forward(batch, kv, check=check)

    engine.runner.model = Counting()
    with engine._wakeup:  # hold the scheduler so that both arrive before its first step
        reply = engine.submit(OTHER_PROMPT, GREEDY)
        scoring = engine.submit(PROMPT, SamplingParams(temperature=0.0, max_tokens=1), score_ids=CANDIDATES)
    tokens = []
    while not isinstance(item := reply.tokens.get(timeout=30), End):
        tokens.append(item)
    assert rows_per_step[0] == 2  # one step for both prefills
    assert scoring.first_logprobs == pytest.approx(_reference_logprobs(PROMPT, CANDIDATES), abs=1e-4)
    assert tokens == _reference_greedy(build_tiny_model(), OTHER_PROMPT, GREEDY.max_tokens)


@pytest.mark.parametrize("ids", [[32000], [-1], [5, 40000], []])
def test_first_logprobs_refuse_ids_out_of_the_vocabulary_or_none(engine: AnyEngine, ids: list[int]) -> None:
    with pytest.raises(ValueError, match="score_ids|token_ids"):
        engine.first_logprobs(PROMPT, ids)
    with pytest.raises(ValueError, match="prompt_ids"):
        engine.first_logprobs([], [5])


def test_first_logprobs_time_out(kind: str) -> None:
    engine = build_engine(kind)
    with engine._wakeup, pytest.raises(TimeoutError):  # the scheduler cannot take it meanwhile
        engine.first_logprobs(PROMPT, CANDIDATES, timeout_s=0.05)
