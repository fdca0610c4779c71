"""The paged engine over a stand-in model: correctness of the cache paths, batching, preemption, bad input."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from inference.loading import ModelInfo
from inference.paged_engine import PagedEngine, paged_engine_for
from inference.params import SamplingParams
from inference.tiny import build_tiny_model
from tests.support.paged_toy import ToyKV, ToyPagedModel

EOS = 2
GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
SEEDED = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, max_tokens=12, seed=7, ignore_eos=True)
PROMPTS = [[1, *range(100 + 7 * i, 110 + 9 * i)] for i in range(6)]


def _engine(
    *,
    num_blocks: int = 256,
    block_size: int = 4,
    max_batch: int = 8,
    max_tokens_per_step: int = 64,
    prefix_cache: bool = True,
    context: int = 256,
    model: ToyPagedModel | None = None,
) -> PagedEngine:
    return PagedEngine(
        model or ToyPagedModel(),
        ToyKV(num_blocks=num_blocks, block_size=block_size),
        info=ModelInfo(name="toy", device="cpu", dtype="float32", context_length=context, parameters=0),
        vocab=32000,
        eos_ids=frozenset({EOS}),
        num_blocks=num_blocks,
        block_size=block_size,
        device=torch.device("cpu"),
        max_batch=max_batch,
        max_tokens_per_step=max_tokens_per_step,
        prefix_cache=prefix_cache,
    )


def _reference_greedy(prompt: list[int], n: int) -> list[int]:
    model, tokens = ToyPagedModel(), list(prompt)
    for _ in range(n):
        tokens.append(int(model.reference_logits(tokens).argmax()))
    return tokens[len(prompt) :]


def _run_all(
    engine: PagedEngine, prompts: list[list[int]], params: SamplingParams, stagger_s: float = 0.0
) -> list[list[int]]:
    results: list[list[int]] = [[] for _ in prompts]

    def one(i: int) -> None:
        time.sleep(stagger_s * i)
        results[i] = list(engine.generate(prompts[i], params))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_greedy_decoding_through_the_paged_cache_equals_a_full_prefill_per_token() -> None:
    assert list(_engine().generate(PROMPTS[0], GREEDY)) == _reference_greedy(PROMPTS[0], GREEDY.max_tokens)


def test_a_reused_prefix_gives_the_logits_of_a_full_prefill() -> None:
    engine = _engine()
    history = [1, *range(300, 340)]
    list(engine.generate(history, GREEDY))
    follow_up = [*history, *range(500, 507)]
    scored = list(range(32000))
    ours = torch.tensor(engine.first_logprobs(follow_up, scored))
    assert engine.load().prefix_hit_rate > 0.3  # the 40-token history came from the cache
    reference = torch.log_softmax(ToyPagedModel().reference_logits(follow_up), dim=-1)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_chunked_prefill_equals_one_shot_prefill() -> None:
    prompt = [1, *range(1000, 1090)]
    chunked = _engine(max_tokens_per_step=8)
    whole = _engine(max_tokens_per_step=128)
    scored = list(range(0, 32000, 7))
    torch.testing.assert_close(
        torch.tensor(chunked.first_logprobs(prompt, scored)),
        torch.tensor(whole.first_logprobs(prompt, scored)),
        atol=1e-4,
        rtol=1e-4,
    )
    assert list(chunked.generate(prompt, GREEDY)) == list(whole.generate(prompt, GREEDY))


@pytest.mark.parametrize("params", [GREEDY, SEEDED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("stagger_s", [0.0, 0.01], ids=["at-once", "staggered"])
def test_output_is_the_same_alone_or_in_a_batch(params: SamplingParams, stagger_s: float) -> None:
    alone = [list(_engine().generate(prompt, params)) for prompt in PROMPTS]
    together = _run_all(_engine(max_tokens_per_step=16), PROMPTS, params, stagger_s)
    assert together == alone


def test_preempted_requests_are_recomputed_and_finish_with_the_same_tokens() -> None:
    # 12 blocks of 4 tokens: six requests of ~20 tokens cannot all hold their blocks at once.
    small = _engine(num_blocks=12, block_size=4, max_batch=6, max_tokens_per_step=16)
    alone = [list(_engine().generate(prompt, SEEDED)) for prompt in PROMPTS]
    assert _run_all(small, PROMPTS, SEEDED) == alone
    load = small.load()
    assert load.preemptions > 0 and load.blocks_used == 0


def test_requests_wait_for_blocks_and_none_fails() -> None:
    engine = _engine(num_blocks=10, block_size=4, max_batch=8)
    results = _run_all(engine, PROMPTS, GREEDY)
    assert [len(r) for r in results] == [GREEDY.max_tokens] * len(PROMPTS)


def test_cancel_frees_the_blocks_at_the_next_step() -> None:
    engine = _engine()
    request = engine.submit(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True))
    assert isinstance(request.tokens.get(timeout=10), int)
    assert engine.load().blocks_used > 0
    request.cancel()
    _wait_for(lambda: engine.load().blocks_used == 0 and engine.load().active == 0)


def test_unseeded_requests_get_seeds_of_their_own() -> None:
    engine = _engine()
    params = SamplingParams(temperature=1.0, max_tokens=12, ignore_eos=True)
    assert len({tuple(engine.generate(PROMPTS[0], params)) for _ in range(3)}) > 1


def test_eos_ends_the_reply_and_frees_its_blocks() -> None:
    model = ToyPagedModel()
    model.head[:, EOS] = 1000.0  # EOS always wins
    engine = _engine(model=model)
    assert list(engine.generate(PROMPTS[0], SamplingParams(temperature=0.0))) == []
    _wait_for(lambda: engine.load().blocks_used == 0)


@pytest.mark.parametrize(
    ("prompt", "params", "message"),
    [
        ([], GREEDY, "empty"),
        ([1, 32000], GREEDY, r"\[0, 32000\)"),
        ([1, -1], GREEDY, r"\[0, 32000\)"),
        ([1] * 256, GREEDY, "leaves no room"),
        ([1, 2, 3], SamplingParams(top_p=0.0), "top_p"),
        ([1] * 100, SamplingParams(max_tokens=100), "whole KV cache holds 40"),
    ],
)
def test_bad_input_is_refused_at_submit_and_changes_nothing(
    prompt: list[int], params: SamplingParams, message: str
) -> None:
    engine = _engine(num_blocks=40)
    with pytest.raises(ValueError, match=message):
        engine.submit(prompt, params)
    load = engine.load()
    assert (load.waiting, load.active, load.blocks_used) == (0, 0, 0)


def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine()
    model = engine.runner.model
    original = model.forward
    monkeypatch.setattr(
        model, "forward", lambda batch, kv, check=True: (_ for _ in ()).throw(RuntimeError("device lost"))
    )
    with pytest.raises(RuntimeError, match="device lost"):
        list(engine.generate(PROMPTS[0], GREEDY))
    monkeypatch.setattr(model, "forward", original)
    assert engine.load().blocks_used == 0
    assert list(engine.generate(PROMPTS[0], GREEDY)) == _reference_greedy(PROMPTS[0], GREEDY.max_tokens)


def test_load_reports_the_cache() -> None:
    engine = _engine(num_blocks=50, block_size=4)
    request = engine.submit(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=100, ignore_eos=True))
    request.tokens.get(timeout=10)
    load = engine.load()
    assert (load.blocks_total, load.block_size, load.active) == (50, 4, 1)
    assert load.blocks_used >= 3
    request.cancel()


# --- the same claims with the tiny Mistral and our forward (what the worker runs) -----------------


def _tiny(**options: object) -> PagedEngine:
    return paged_engine_for(build_tiny_model(), name="tiny", kv_cache_gb=0.02, max_batch=4, **options)


def test_tiny_mistral_a_reused_prefix_and_chunks_give_the_logits_of_one_full_prefill() -> None:
    history = [1, *range(2000, 2070)]
    follow_up = [*history, *range(3000, 3012)]
    scored = list(range(0, 32000, 3))
    cached = _tiny(max_tokens_per_step=16)
    list(cached.generate(history, GREEDY))  # the history's blocks, computed in chunks of 16
    reused = torch.tensor(cached.first_logprobs(follow_up, scored))
    assert cached.load().prefix_hit_rate > 0.3
    whole = torch.tensor(_tiny(prefix_cache=False).first_logprobs(follow_up, scored))
    torch.testing.assert_close(reused, whole, atol=1e-4, rtol=1e-4)
