"""The engine: loading, the decode loop against transformers, sampling, stopping, threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM

from inference.engine import Engine, EngineError, load_engine, resolve_device_dtype, sample_next
from inference.params import SamplingParams
from inference.tiny import TINY_MODEL_NAME, build_tiny_model, tiny_config

# "<s>[INST] Hello [/INST]" and a second one, as mistral_common v1 would give them;
# any ids in range do for a random model.
PROMPT = [1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793]
OTHER_PROMPT = [1, 733, 16289, 28793, 1824, 349, 272, 5565, 302, 4843, 28804, 733, 28748, 16289, 28793]
GREEDY = SamplingParams(temperature=0.0, max_tokens=20)
EOS = 2


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine(device="cpu", dtype="float32")


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


def _forcing_model(bias: dict[int, float]) -> MistralForCausalLM:
    """A tiny model whose logits are a constant bias: its choices are known in advance."""
    model = build_tiny_model()
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for token, value in bias.items():
            head.bias[token] = value
    model.lm_head = head
    return model


# --- the model and its info -------------------------------------------------------------------


def test_default_engine_is_the_tiny_model(engine: Engine) -> None:
    assert engine.info.name == TINY_MODEL_NAME
    assert engine.info.device == "cpu"
    assert engine.info.dtype == "float32"
    assert engine.info.context_length == 32768
    assert engine.info.parameters == sum(p.numel() for p in build_tiny_model().parameters())


# --- greedy decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [PROMPT, OTHER_PROMPT])
def test_greedy_equals_transformers_generate(engine: Engine, prompt: list[int]) -> None:
    ours = list(engine.generate(prompt, GREEDY))
    assert ours == _reference_greedy(build_tiny_model(), prompt, GREEDY.max_tokens)
    assert len(ours) == GREEDY.max_tokens  # no EOS early: the comparison covers all 20 steps


def test_greedy_is_deterministic(engine: Engine) -> None:
    assert list(engine.generate(PROMPT, GREEDY)) == list(engine.generate(PROMPT, GREEDY))


def test_greedy_ignores_the_seed(engine: Engine) -> None:
    seeded = SamplingParams(temperature=0.0, max_tokens=10, seed=5)
    assert list(engine.generate(PROMPT, seeded)) == list(engine.generate(PROMPT, GREEDY))[:10]


# --- sampling through the engine ----------------------------------------------------------------


def test_same_seed_same_tokens(engine: Engine) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=100, max_tokens=20, seed=1234)
    assert list(engine.generate(PROMPT, params)) == list(engine.generate(PROMPT, params))


def test_different_seeds_different_tokens(engine: Engine) -> None:
    runs = {
        tuple(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=10, seed=seed)))
        for seed in (1, 2, 3)
    }
    assert len(runs) == 3


def test_no_seed_is_not_deterministic(engine: Engine) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=10, seed=None)
    assert list(engine.generate(PROMPT, params)) != list(engine.generate(PROMPT, params))


def test_sampling_leaves_the_global_rng_alone(engine: Engine) -> None:
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    list(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=5)))
    list(engine.generate(PROMPT, SamplingParams(temperature=1.0, max_tokens=5, seed=3)))
    assert torch.equal(torch.rand(1), expected)


# --- the ways a reply ends ----------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [0, 1, 7])
def test_max_tokens_respected(engine: Engine, max_tokens: int) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    assert len(list(engine.generate(PROMPT, params))) == max_tokens


def test_should_stop_stops_promptly(engine: Engine) -> None:
    got: list[int] = []
    for token in engine.generate(PROMPT, GREEDY, should_stop=lambda: len(got) >= 3):
        got.append(token)
    assert got == list(engine.generate(PROMPT, GREEDY))[:3]


def test_should_stop_before_the_prefill(engine: Engine) -> None:
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return True

    assert list(engine.generate(PROMPT, GREEDY, should_stop=stop)) == []
    assert calls == [1]


def test_should_stop_is_checked_before_every_step(engine: Engine) -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    assert (
        len(list(engine.generate(PROMPT, SamplingParams(temperature=0.0, max_tokens=5), should_stop=never)))
        == 5
    )
    assert len(calls) == 5


def test_eos_first_yields_nothing() -> None:
    engine = Engine(_forcing_model({EOS: 10.0}), name="forced-eos")
    assert list(engine.generate(PROMPT, GREEDY)) == []
    assert list(engine.generate(PROMPT, SamplingParams(temperature=0.7, max_tokens=5, seed=0))) == []


def test_eos_after_tokens_is_not_yielded() -> None:
    # Token 7 wins the first step; the repetition penalty then pushes it below EOS.
    engine = Engine(_forcing_model({7: 10.0, EOS: 9.0}), name="forced")
    params = SamplingParams(temperature=0.0, max_tokens=20, repetition_penalty=2.0)
    assert list(engine.generate(PROMPT, params)) == [7]


def test_context_window_ends_the_reply() -> None:
    config = tiny_config()
    config.max_position_embeddings = len(PROMPT) + 4
    model = MistralForCausalLM(config).eval()
    engine = Engine(model, name="short-context")
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
    engine: Engine, prompt: list[int], params: SamplingParams
) -> None:
    with pytest.raises(ValueError):
        engine.generate(prompt, params)


def test_inference_mode_does_not_leak_to_the_caller(engine: Engine) -> None:
    stream = engine.generate(PROMPT, GREEDY)
    next(stream)
    assert not torch.is_inference_mode_enabled()
    stream.close()


# --- threads ------------------------------------------------------------------------------------


def test_concurrent_generations_match_solo_runs(engine: Engine) -> None:
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


# --- loading real weights from a folder -------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-mistral")
    build_tiny_model().save_pretrained(folder, safe_serialization=True)
    return folder


def test_save_pretrained_writes_safetensors(saved_model: Path) -> None:
    assert (saved_model / "model.safetensors").is_file()
    assert json.loads((saved_model / "config.json").read_text())["vocab_size"] == 32000


def test_load_folder_float32_matches_the_in_memory_model(saved_model: Path, engine: Engine) -> None:
    loaded = load_engine(model_path=str(saved_model), device="cpu", dtype="float32")
    assert loaded.info.name == str(saved_model)
    assert (loaded.info.device, loaded.info.dtype) == ("cpu", "float32")
    assert loaded.info.context_length == 32768
    assert loaded.info.parameters == engine.info.parameters
    assert not loaded.model.training
    assert list(loaded.generate(PROMPT, GREEDY)) == list(engine.generate(PROMPT, GREEDY))


def test_load_folder_bfloat16(saved_model: Path) -> None:
    loaded = load_engine(model_path=str(saved_model), device="cpu", dtype="bfloat16")
    assert (loaded.info.name, loaded.info.dtype) == (str(saved_model), "bfloat16")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    tokens = list(loaded.generate(PROMPT, SamplingParams(temperature=0.7, max_tokens=10, seed=1)))
    assert len(tokens) == 10
    assert all(0 <= t < 32000 for t in tokens)


def test_tiny_model_in_bfloat16_matches_the_loaded_one(saved_model: Path) -> None:
    tiny = load_engine(device="cpu", dtype="bf16")
    assert (tiny.info.name, tiny.info.dtype) == (TINY_MODEL_NAME, "bfloat16")
    assert {p.dtype for p in tiny.model.parameters()} == {torch.bfloat16}
    # RoPE frequencies stay float32, as from_pretrained keeps them.
    assert {b.dtype for b in tiny.model.buffers() if b.is_floating_point()} == {torch.float32}
    loaded = load_engine(model_path=str(saved_model), device="cpu", dtype="bfloat16")
    assert list(tiny.generate(PROMPT, GREEDY)) == list(loaded.generate(PROMPT, GREEDY))


def test_wrong_vocab_folder_is_refused(tmp_path: Path) -> None:
    config = tiny_config()
    config.vocab_size = 32768  # Mistral v0.3's vocabulary
    config.save_pretrained(tmp_path)  # the config alone: it is refused before any weights are read
    with pytest.raises(EngineError, match="vocabulary of 32768"):
        load_engine(model_path=str(tmp_path), device="cpu")


def test_wrong_vocab_model_is_refused() -> None:
    config = MistralConfig(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    with pytest.raises(EngineError, match="vocabulary of 1000"):
        Engine(MistralForCausalLM(config), name="small-vocab")


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no such folder"):
        load_engine(model_path=str(tmp_path / "nope"), device="cpu")


def test_unknown_hub_id_is_refused() -> None:
    with pytest.raises(EngineError, match="local Hugging Face cache"):
        load_engine(model_path="nobody-here/no-such-model-xyz", device="cpu")


def test_folder_without_weights_is_refused(tmp_path: Path) -> None:
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(EngineError, match="cannot load the weights"):
        load_engine(model_path=str(tmp_path), device="cpu")


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="config.json"):
        load_engine(model_path=str(tmp_path), device="cpu")


# --- device and dtype ---------------------------------------------------------------------------


def test_defaults_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device_dtype(None, None) == ("cpu", torch.float32)
    assert resolve_device_dtype("cpu", "bfloat16") == ("cpu", torch.bfloat16)
    with pytest.raises(EngineError, match="CUDA is not available"):
        resolve_device_dtype("cuda", None)


def test_defaults_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device_dtype(None, None) == ("cuda", torch.bfloat16)
    assert resolve_device_dtype("cuda:0", "float16") == ("cuda:0", torch.float16)
    assert resolve_device_dtype("cpu", None) == ("cpu", torch.float32)


def test_unknown_device_or_dtype_is_refused() -> None:
    with pytest.raises(EngineError, match="unknown dtype"):
        resolve_device_dtype("cpu", "float8")
    with pytest.raises(EngineError, match="unknown device"):
        resolve_device_dtype("tpu-ish", None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_engine_streams() -> None:
    gpu = load_engine()
    assert gpu.info.device.startswith("cuda")
    assert gpu.info.dtype == "bfloat16"
    params = SamplingParams(
        temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.1, max_tokens=16, seed=3
    )
    first = list(gpu.generate(PROMPT, params))
    assert len(first) == 16
    assert first == list(gpu.generate(PROMPT, params))
    assert len(list(gpu.generate(PROMPT, GREEDY))) == GREEDY.max_tokens
