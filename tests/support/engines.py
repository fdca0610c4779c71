"""Both engines over the same tiny model, for the tests that hold for either: the paged one and the eager one."""

from __future__ import annotations

from typing import Any

import torch
from transformers import MistralForCausalLM

from inference.engine import Engine
from inference.forward_batch import ForwardBatch
from inference.paged_engine import PagedEngine, paged_engine_for
from inference.tiny import build_tiny_model

ENGINE_KINDS = ["paged", "eager"]


class BiasedLogits:
    """A step model whose logits are a constant bias: its choices are known in advance."""

    def __init__(self, inner: Any, bias: dict[int, float], vocab: int) -> None:
        self.inner = inner
        self.bias = torch.zeros(vocab)
        for token, value in bias.items():
            self.bias[token] = value

    def forward(self, batch: ForwardBatch, kv: Any, *, check: bool = True) -> torch.Tensor:
        logits = self.inner.forward(batch, kv, check=check)
        return torch.zeros_like(logits) + self.bias.to(logits.device)


def build_engine(
    kind: str,
    model: MistralForCausalLM | None = None,
    *,
    name: str = "tiny",
    max_batch: int = 32,
    bias: dict[int, float] | None = None,
) -> Engine | PagedEngine:
    model = model or build_tiny_model()
    if kind == "eager":
        if bias:
            head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
            with torch.no_grad():
                head.weight.zero_()
                head.bias.zero_()
                for token, value in bias.items():
                    head.bias[token] = value
            model.lm_head = head
        return Engine(model, name=name, max_batch=max_batch)
    engine = paged_engine_for(model, name=name, max_batch=max_batch, kv_cache_gb=0.05)
    if bias:
        engine.runner.model = BiasedLogits(engine.runner.model, bias, model.config.vocab_size)
    return engine


def step_model(engine: Engine | PagedEngine) -> Any:
    """What runs each step: the transformers model, or the paged engine's forward."""
    return engine.runner.model if isinstance(engine, PagedEngine) else engine.model
