"""Model loading and streaming token generation for the inference worker.

``load_engine`` builds the embedded tiny model (``MODEL_PATH`` unset) or loads
Mistral weights from a local folder or the local Hugging Face cache, never from
the network. ``Engine.generate`` streams the ids of one reply, one request at a
time per call; calls on one engine from several threads are safe because each
keeps its own KV cache and random generator.

``sample_next`` is the per-request sampler (temperature, top-k, top-p,
repetition penalty), kept separate so that a batched decoder can reuse it.
No Django, no Redis: plain Python and torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, PreTrainedModel

from inference.params import SamplingParams
from inference.tiny import TINY_MODEL_NAME, build_tiny_model

# Our tokenizer is mistral_common's v1 SentencePiece model: 32000 ids. A model with
# another vocabulary would read our ids as different tokens, so it is refused.
VOCAB_SIZE = 32000

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


@dataclass(frozen=True)
class ModelInfo:
    """What the UI and ``/healthz`` say about the loaded model."""

    name: str  # TINY_MODEL_NAME, or the MODEL_PATH given
    device: str  # "cpu", "cuda:0", ...
    dtype: str  # "float32", "bfloat16", ...
    context_length: int  # config.max_position_embeddings
    parameters: int


class EngineError(RuntimeError):
    """The model cannot be loaded or used: the message says why, for an operator."""


def _never() -> bool:
    return False


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    previous_ids: torch.Tensor | Sequence[int] | None = None,
) -> int:
    """Pick the next token id from one position's ``logits`` (shape ``[vocab]``).

    Order as in transformers: repetition penalty, then temperature (0 = greedy
    argmax), top-k, top-p. ``previous_ids`` (prompt and generated so far,
    duplicates allowed) is what the repetition penalty applies to.
    """
    scores = logits.float()
    if params.repetition_penalty != 1.0 and previous_ids is not None and len(previous_ids) > 0:
        ids = torch.as_tensor(previous_ids, dtype=torch.long, device=scores.device)
        seen = scores.gather(0, ids)
        # HF semantics: a penalty > 1 always makes a seen token less likely,
        # whichever the sign of its logit.
        seen = torch.where(seen > 0, seen / params.repetition_penalty, seen * params.repetition_penalty)
        scores = scores.scatter(0, ids, seen)
    if params.temperature == 0:
        return int(torch.argmax(scores).item())
    scores = scores / params.temperature
    if 0 < params.top_k < scores.numel():
        kth_best = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        # Drop a token when the more likely ones already hold top_p of the mass;
        # the most likely token is never dropped.
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop = torch.zeros_like(scores, dtype=torch.bool).scatter(0, order, mass_before >= params.top_p)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def check_params(params: SamplingParams) -> None:
    """Raise ValueError for parameters the sampler cannot work with."""
    if not params.temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {params.temperature!r}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {params.top_p!r}")
    if params.top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {params.top_k!r}")
    if not params.repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {params.repetition_penalty!r}")
    if params.max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {params.max_tokens!r}")


class Engine:
    """One loaded causal LM and the decode loop that streams its replies."""

    def __init__(self, model: PreTrainedModel, *, name: str) -> None:
        config = model.config
        if config.vocab_size != VOCAB_SIZE:
            raise EngineError(
                f"model {name!r} has a vocabulary of {config.vocab_size} tokens, but this server's "
                f"tokenizer (Mistral v1 SentencePiece) has {VOCAB_SIZE}: use a Mistral-7B v0.1/v0.2 model"
            )
        self.model = model.eval()
        first = next(model.parameters())
        self.device = first.device
        eos = config.eos_token_id
        self.eos_ids: frozenset[int] = frozenset([eos] if isinstance(eos, int) else (eos or []))
        self.info = ModelInfo(
            name=name,
            device=str(first.device),
            dtype=str(first.dtype).removeprefix("torch."),
            context_length=int(config.max_position_embeddings),
            parameters=sum(p.numel() for p in model.parameters()),
        )

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        should_stop: Callable[[], bool] = _never,
    ) -> Iterator[int]:
        """Yield generated token ids one at a time.

        Ends after EOS (EOS itself is not yielded), after ``params.max_tokens``
        ids, at the end of the context window, or as soon as ``should_stop()``
        is true (checked before every step). Bad prompts or parameters raise
        ValueError here, at the call, not at the first ``next``.
        """
        check_params(params)
        prompt = [int(i) for i in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids is empty")
        if min(prompt) < 0 or max(prompt) >= VOCAB_SIZE:
            raise ValueError(f"prompt_ids must lie in [0, {VOCAB_SIZE})")
        if len(prompt) >= self.info.context_length:
            raise ValueError(
                f"prompt of {len(prompt)} tokens leaves no room in the {self.info.context_length}-token context"
            )
        return self._decode(prompt, params, should_stop)

    def _decode(
        self, prompt: list[int], params: SamplingParams, should_stop: Callable[[], bool]
    ) -> Iterator[int]:
        budget = min(params.max_tokens, self.info.context_length - len(prompt))
        generator = torch.Generator(device=self.device)
        if params.seed is None:
            generator.seed()  # fresh entropy: never the shared global RNG
        else:
            generator.manual_seed(params.seed)
        # Inference mode is entered per step, never across a yield: the mode is
        # thread-local and would otherwise leak into the caller between tokens.
        with torch.inference_mode():
            ids = torch.empty(len(prompt) + budget, dtype=torch.long, device=self.device)
            ids[: len(prompt)] = torch.tensor(prompt, dtype=torch.long)
            cache = DynamicCache(config=self.model.config)
        length = len(prompt)
        step_input = ids[:length]  # the first step is the prefill of the whole prompt
        for _ in range(budget):
            if should_stop():
                return
            token = self._step(step_input, cache, params, generator, ids[:length])
            if token in self.eos_ids:
                return
            with torch.inference_mode():
                ids[length] = token
            step_input = ids[length : length + 1]
            length += 1
            yield token

    @torch.inference_mode()
    def _step(
        self,
        step_input: torch.Tensor,
        cache: DynamicCache,
        params: SamplingParams,
        generator: torch.Generator,
        previous_ids: torch.Tensor,
    ) -> int:
        # logits_to_keep=1: only the last position is sampled, so a long prefill
        # never materialises a [prompt, vocab] logits tensor.
        out = self.model(
            input_ids=step_input.unsqueeze(0), past_key_values=cache, use_cache=True, logits_to_keep=1
        )
        return sample_next(out.logits[0, -1], params, generator, previous_ids)


def resolve_device_dtype(device: str | None, dtype: str | None) -> tuple[str, torch.dtype]:
    """Fill in defaults: cuda + bfloat16 when CUDA is available, else cpu + float32."""
    if device is None or device == "":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} asked for, but CUDA is not available on this machine")
    if dtype is None or dtype == "":
        return device, torch.bfloat16 if parsed.type == "cuda" else torch.float32
    try:
        return device, _DTYPES[dtype.lower()]
    except KeyError:
        raise EngineError(f"unknown dtype {dtype!r}: use one of {', '.join(_DTYPES)}") from None


def load_engine(
    *, model_path: str | None = None, device: str | None = None, dtype: str | None = None
) -> Engine:
    """Build the tiny model (no ``model_path``) or load local weights; raise EngineError if unloadable."""
    device, torch_dtype = resolve_device_dtype(device, dtype)
    if model_path is None:
        model: PreTrainedModel = _cast_parameters(build_tiny_model(), torch_dtype)
        name = TINY_MODEL_NAME
    else:
        model = _load_pretrained(model_path, torch_dtype)
        name = model_path
    return Engine(model.to(device), name=name)


def _cast_parameters(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    # Not `model.to(dtype)`: that would also cast the RoPE `inv_freq` buffers, which
    # from_pretrained keeps in float32; bf16 frequencies blur positions far into 32k.
    with torch.no_grad():
        for param in model.parameters():
            param.data = param.data.to(dtype)
    return model


def _load_pretrained(model_path: str, torch_dtype: torch.dtype) -> PreTrainedModel:
    looks_like_path = os.path.isabs(model_path) or model_path.startswith((".", "~"))
    if looks_like_path and not os.path.isdir(os.path.expanduser(model_path)):
        raise EngineError(f"MODEL_PATH {model_path!r}: no such folder")
    path = os.path.expanduser(model_path) if looks_like_path else model_path
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EngineError(
            f"MODEL_PATH {model_path!r} is neither a local folder with a config.json nor a model in the "
            f"local Hugging Face cache (downloads are off): {exc}"
        ) from exc
    # Checked before loading the weights: refusing a 14 GB load takes no time.
    vocab = getattr(config, "vocab_size", None)
    if vocab != VOCAB_SIZE:
        raise EngineError(
            f"model {model_path!r} has a vocabulary of {vocab} tokens, but this server's tokenizer "
            f"(Mistral v1 SentencePiece) has {VOCAB_SIZE}: use a Mistral-7B v0.1/v0.2 model"
        )
    try:
        # transformers 5 names it `dtype` (`torch_dtype` is deprecated). No device_map:
        # it needs `accelerate`, so weights load on the CPU and move afterwards.
        return AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=torch_dtype, local_files_only=True
        )
    except Exception as exc:  # any failure here means the same thing to an operator
        raise EngineError(f"cannot load the weights of {model_path!r}: {type(exc).__name__}: {exc}") from exc
