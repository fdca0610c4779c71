"""Loading a model: a folder written by save_pretrained (fp32, bf16), refusals, device and dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaTokenizer, MistralConfig, MistralForCausalLM

from inference.chat_template import model_path
from inference.engine import Engine, load_engine
from inference.loading import EngineError, resolve_device_dtype
from inference.paged_engine import load_engine as load_paged_engine
from inference.params import SamplingParams
from inference.tiny import TINY_MODEL_NAME, build_tiny_model, tiny_config

PROMPT = [1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793]
GREEDY = SamplingParams(temperature=0.0, max_tokens=20)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine(device="cpu", dtype="float32")


# --- loading real weights from a folder -------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like a Hugging Face checkpoint: config, safetensors, tokenizer files."""
    folder = tmp_path_factory.mktemp("tiny-mistral")
    build_tiny_model().save_pretrained(folder, safe_serialization=True)
    LlamaTokenizer(vocab_file=str(model_path()), legacy=False).save_pretrained(folder)
    return folder


def test_the_folder_is_laid_out_like_a_real_checkpoint(saved_model: Path) -> None:
    # The tokenizer files are there as in a real checkpoint, and ignored: prompts
    # are always built by inference.chat_template (mistral_common's v1 tokenizer).
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in saved_model.iterdir()
    }


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


# --- the paged engine (the worker's default) loads the same folders -------------------------------


def test_the_paged_engine_loads_a_folder_and_answers_as_the_eager_one(
    saved_model: Path, engine: Engine
) -> None:
    paged = load_paged_engine(model_path=str(saved_model), device="cpu", dtype="float32", kv_cache_gb=0.05)
    assert (paged.info.name, paged.info.dtype, paged.info.context_length) == (
        str(saved_model),
        "float32",
        32768,
    )
    assert paged.info.parameters == engine.info.parameters
    assert list(paged.generate(PROMPT, GREEDY)) == list(engine.generate(PROMPT, GREEDY))
    load = paged.load()
    assert load.block_size == 16 and load.blocks_total > 0


def test_a_kv_cache_budget_that_holds_no_block_is_refused_with_the_setting_named() -> None:
    with pytest.raises(EngineError, match="KV_CACHE_GB"):
        load_paged_engine(device="cpu", kv_cache_gb=1e-9)


def test_the_paged_engine_refuses_a_model_of_another_vocabulary(tmp_path: Path) -> None:
    config = tiny_config()
    config.vocab_size = 1000
    MistralForCausalLM(config).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(EngineError, match="vocabulary"):
        load_paged_engine(model_path=str(tmp_path), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_gives_the_tokens_of_eager_steps() -> None:
    graphed = load_paged_engine(kv_cache_gb=1.0, max_batch=8)
    eager = load_paged_engine(kv_cache_gb=1.0, max_batch=8, cuda_graphs=False)
    assert graphed.runner.graphs and not eager.runner.graphs
    seeded = SamplingParams(
        temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.1, max_tokens=16, seed=3
    )
    for params in (GREEDY, seeded):
        assert list(graphed.generate(PROMPT, params)) == list(eager.generate(PROMPT, params))
