"""Loading the model: the embedded tiny one, or Mistral weights from a local folder or cache.

Never from the network (`local_files_only`). No Django, no Redis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from inference.mistral import MistralForward
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

    @classmethod
    def of(cls, model: PreTrainedModel, name: str) -> ModelInfo:
        first = next(model.parameters())
        return cls(
            name=name,
            device=str(first.device),
            dtype=str(first.dtype).removeprefix("torch."),
            context_length=int(model.config.max_position_embeddings),
            parameters=sum(p.numel() for p in model.parameters()),
        )


class EngineError(RuntimeError):
    """The model cannot be loaded or used: the message says why, for an operator."""


def check_vocab(vocab: object, name: str) -> None:
    if vocab != VOCAB_SIZE:
        raise EngineError(
            f"model {name!r} has a vocabulary of {vocab} tokens, but this server's tokenizer "
            f"(Mistral v1 SentencePiece) has {VOCAB_SIZE}: use a Mistral-7B v0.1/v0.2 model"
        )


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


def load_model(
    *, model_path: str | None = None, device: str | None = None, dtype: str | None = None
) -> tuple[PreTrainedModel, str]:
    """The tiny model (no ``model_path``) or local weights, on the device, and its name."""
    device, torch_dtype = resolve_device_dtype(device, dtype)
    model, name = _load_on_cpu(model_path, torch_dtype)
    return model.to(device).eval(), name


def _load_on_cpu(model_path: str | None, torch_dtype: torch.dtype) -> tuple[PreTrainedModel, str]:
    if model_path is None:
        return _cast_parameters(build_tiny_model(), torch_dtype), TINY_MODEL_NAME
    return _load_pretrained(model_path, torch_dtype), model_path


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
    check_vocab(getattr(config, "vocab_size", None), model_path)
    try:
        # transformers 5 names it `dtype` (`torch_dtype` is deprecated). No device_map:
        # it needs `accelerate`, so weights load on the CPU and move afterwards.
        return AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=torch_dtype, local_files_only=True
        )
    except Exception as exc:  # any failure here means the same thing to an operator
        raise EngineError(f"cannot load the weights of {model_path!r}: {type(exc).__name__}: {exc}") from exc


def load_forward(
    *, model_path: str | None = None, device: str | None = None, dtype: str | None = None
) -> tuple[MistralForward, str]:
    """Our paged forward (`inference.mistral`) over the tiny model or local weights, and its name.

    transformers still reads the config and the safetensors (same checks and errors
    as `load_model`); its model is converted layer by layer, on the CPU, and
    dropped, then ours moves to the device.
    """
    device, torch_dtype = resolve_device_dtype(device, dtype)
    hf_model, name = _load_on_cpu(model_path, torch_dtype)
    try:
        forward = MistralForward.from_hf(hf_model, consume=True)
    except ValueError as exc:
        raise EngineError(f"model {name!r} cannot run on the paged forward: {exc}") from exc
    return forward.to(device), name
