"""Sampling parameters of one reply, and their validation.

The web process validates what a client sends with `parse_params` before it
stores anything; the worker rebuilds the same dataclass from the stored dict.
Plain Python: no torch, no Django.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0  # (0, 1]
    top_k: int = 0  # 0 = off
    max_tokens: int = 512
    repetition_penalty: float = 1.0
    seed: int | None = None
    # Benchmarks only: decode exactly max_tokens. Clients cannot set it.
    ignore_eos: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ParamError(ValueError):
    """A sampling parameter is unknown, of the wrong type, or out of range."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# name -> (type, lowest, highest, lowest is exclusive). Bounds are inclusive
# unless marked, and every error message names them.
_RULES: dict[str, tuple[type, float, float, bool]] = {
    "temperature": (float, 0.0, 2.0, False),
    "top_p": (float, 0.0, 1.0, True),
    "top_k": (int, 0, 1000, False),
    "max_tokens": (int, 1, 0, False),  # highest comes from the caller
    "repetition_penalty": (float, 1.0, 2.0, False),
    "seed": (int, 0, 2**32 - 1, False),
}


def parse_params(raw: object, *, max_tokens_limit: int, default_max_tokens: int) -> SamplingParams:
    """Validate a client's `params` object into SamplingParams, or raise ParamError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamError("params", "params must be an object")
    unknown = sorted(set(raw) - set(_RULES))
    if unknown:
        raise ParamError(unknown[0], f"unknown parameter {unknown[0]!r}; allowed: {', '.join(_RULES)}")
    values: dict[str, Any] = {"max_tokens": min(default_max_tokens, max_tokens_limit)}
    for name, value in raw.items():
        if value is None and name == "seed":
            continue
        kind, low, high, low_exclusive = _RULES[name]
        if name == "max_tokens":
            high = max_tokens_limit
        values[name] = _check(name, value, kind, low, high, low_exclusive)
    return SamplingParams(**values)


def _check(name: str, value: object, kind: type, low: float, high: float, low_exclusive: bool) -> float | int:
    # bool is an int subclass in Python; true/false is never a valid number here.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or isinstance(value, float)
    if kind is int and not is_int:
        raise ParamError(name, f"{name} must be an integer")
    if kind is float and not is_number:
        raise ParamError(name, f"{name} must be a number")
    assert isinstance(value, int | float)
    if value != value or value in (float("inf"), float("-inf")):
        raise ParamError(name, f"{name} must be a finite number")
    too_low = value <= low if low_exclusive else value < low
    if too_low or value > high:
        opening = "(" if low_exclusive else "["
        raise ParamError(name, f"{name} must be in {opening}{_fmt(low)}, {_fmt(high)}]; got {value!r}")
    return kind(value)


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
