"""The embedded tiny model: deterministic weights, the v0.2 shape facts, the 7B config."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM

from inference.tiny import TINY_MODEL_NAME, build_tiny_model, mistral_7b_config, tiny_config

REPO_ROOT = Path(__file__).resolve().parents[2]

_DIGEST_SCRIPT = """
import hashlib
from inference.tiny import build_tiny_model
model = build_tiny_model(seed=0)
digest = hashlib.sha256()
for name, tensor in sorted(model.state_dict().items()):
    digest.update(name.encode())
    digest.update(tensor.numpy().tobytes())
print(digest.hexdigest())
"""


def _digest(model: MistralForCausalLM) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _param_count(config: MistralConfig) -> int:
    """Parameters of a MistralForCausalLM, from its config alone (no allocation)."""
    hidden, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    q_width = config.num_attention_heads * config.head_dim
    kv_width = config.num_key_value_heads * config.head_dim
    attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
    mlp = 3 * hidden * inter
    norms = 2 * hidden
    embeddings = vocab * hidden * (1 if config.tie_word_embeddings else 2)
    return embeddings + config.num_hidden_layers * (attention + mlp + norms) + hidden


def test_same_seed_same_weights() -> None:
    first, second = build_tiny_model(seed=0), build_tiny_model(seed=0)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_different_seed_different_weights() -> None:
    first, second = build_tiny_model(seed=0), build_tiny_model(seed=1)
    assert not torch.equal(first.lm_head.weight, second.lm_head.weight)
    assert not torch.equal(first.model.embed_tokens.weight, second.model.embed_tokens.weight)


def test_weights_ignore_and_keep_the_global_rng() -> None:
    torch.manual_seed(123)
    first = build_tiny_model(seed=0)
    after_build = torch.rand(1)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(999)
    second = build_tiny_model(seed=0)
    assert _digest(first) == _digest(second)
    assert torch.equal(after_build, expected_next)  # building consumed none of the caller's RNG


def test_weights_are_the_same_in_another_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == _digest(build_tiny_model(seed=0))


def test_model_is_eval_fp32_mistral() -> None:
    model = build_tiny_model()
    assert isinstance(model, MistralForCausalLM)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 20_000_000
    assert TINY_MODEL_NAME == "tiny-random-mistral"


def test_tiny_config_keeps_the_v02_facts() -> None:
    config = tiny_config()
    assert config.model_type == "mistral"
    assert config.vocab_size == 32000
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert config.rope_parameters["rope_theta"] == 1_000_000.0
    assert config.max_position_embeddings == 32768
    assert config.sliding_window is None
    assert config.tie_word_embeddings is False
    # GQA kept: fewer KV heads than query heads, each KV head shared by a whole group.
    assert config.num_key_value_heads < config.num_attention_heads
    assert config.num_attention_heads % config.num_key_value_heads == 0
    assert config.head_dim * config.num_attention_heads == config.hidden_size
    assert (config.num_hidden_layers, config.hidden_size) == (2, 128)


def test_param_count_formula_matches_a_real_model() -> None:
    model = build_tiny_model()
    assert _param_count(model.config) == sum(p.numel() for p in model.parameters())


def test_mistral_7b_config_figures() -> None:
    config = mistral_7b_config()
    assert config.model_type == "mistral"
    assert config.num_hidden_layers == 32
    assert config.hidden_size == 4096
    assert config.intermediate_size == 14336
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (32, 8, 128)
    assert config.vocab_size == 32000
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert config.rope_parameters["rope_theta"] == 1_000_000.0
    assert config.max_position_embeddings == 32768
    assert config.sliding_window is None
    assert config.tie_word_embeddings is False
    params = _param_count(config)
    assert params == 7_241_732_096
    assert round(params / 1e9, 2) == 7.24
