"""The embedded default model: a tiny Mistral with seeded random weights.

No machine here can download weights, so with ``MODEL_PATH`` unset the worker
runs this model instead. It is the same architecture class as
Mistral-7B-Instruct-v0.2 (``MistralForCausalLM``, vocab 32000, GQA, RoPE theta
1e6, 32k context, no sliding window), only small: its replies are gibberish,
but every code path around it is the real one.

``mistral_7b_config`` holds the real v0.2 figures, for benchmarks and for
arithmetic on the real model without allocating it.
"""

from __future__ import annotations

import torch
from transformers import MistralConfig, MistralForCausalLM

TINY_MODEL_NAME = "tiny-random-mistral"

# Shared by both configs: these are the facts of Mistral-7B-Instruct-v0.2 that the
# tokenizer, the chat template and the context fitting depend on.
_VOCAB_SIZE = 32000
_BOS_ID = 1
_EOS_ID = 2
_ROPE_THETA = 1_000_000.0
_CONTEXT_LENGTH = 32768

# Standard deviation of the random weights; the value transformers uses for Mistral.
_INIT_STD = 0.02


def _mistral_config(
    *,
    num_hidden_layers: int,
    hidden_size: int,
    intermediate_size: int,
    num_attention_heads: int,
    num_key_value_heads: int,
) -> MistralConfig:
    return MistralConfig(
        vocab_size=_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=hidden_size // num_attention_heads,
        hidden_act="silu",
        max_position_embeddings=_CONTEXT_LENGTH,
        initializer_range=_INIT_STD,
        rms_norm_eps=1e-5,
        bos_token_id=_BOS_ID,
        eos_token_id=_EOS_ID,
        tie_word_embeddings=False,
        # transformers 5 keeps RoPE settings in `rope_parameters`, not `rope_theta`.
        rope_parameters={"rope_type": "default", "rope_theta": _ROPE_THETA},
        # v0.2 dropped v0.1's 4k window; MistralConfig still defaults to 4096.
        sliding_window=None,
        architectures=["MistralForCausalLM"],
    )


def tiny_config() -> MistralConfig:
    """The tiny model's config: Mistral v0.2's shape facts, 2 layers of width 128."""
    return _mistral_config(
        num_hidden_layers=2,
        hidden_size=128,
        intermediate_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
    )


def mistral_7b_config() -> MistralConfig:
    """The config of the real Mistral-7B-Instruct-v0.2 (7.24 B parameters)."""
    return _mistral_config(
        num_hidden_layers=32,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
    )


def build_tiny_model(seed: int = 0) -> MistralForCausalLM:
    """Build the tiny model with random weights drawn from ``seed``, fp32, in eval mode.

    The same seed gives the same weights in any process: every parameter is drawn
    here from a private generator in a fixed order, so neither the global RNG nor
    transformers' own initialisation scheme can change them.
    """
    # transformers initialises the weights from the global RNG before we overwrite
    # them; fork it so that building the model leaves the caller's RNG untouched.
    with torch.random.fork_rng(devices=[]):
        model = MistralForCausalLM(tiny_config()).to(torch.float32)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)  # RMSNorm gains start at one, as in training.
            else:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float32) * _INIT_STD)
    return model.eval()
