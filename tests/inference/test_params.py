"""Validation of a client's sampling parameters."""

import math

import pytest

from inference.params import ParamError, SamplingParams, parse_params


def parse(raw: object) -> SamplingParams:
    return parse_params(raw, max_tokens_limit=4096, default_max_tokens=512)


def test_missing_params_give_the_defaults() -> None:
    assert parse(None) == parse({}) == SamplingParams(max_tokens=512)


def test_default_max_tokens_never_exceeds_the_limit() -> None:
    assert parse_params({}, max_tokens_limit=100, default_max_tokens=512).max_tokens == 100


def test_good_values_round_trip() -> None:
    raw = {
        "temperature": 0,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 4096,
        "repetition_penalty": 1.1,
        "seed": 0,
    }
    params = parse(raw)
    assert params.to_dict() == {**raw, "temperature": 0.0, "ignore_eos": False}
    assert isinstance(params.temperature, float)
    assert SamplingParams(**params.to_dict()) == params


@pytest.mark.parametrize(
    ("raw", "name", "words"),
    [
        ("hot", "params", "object"),
        ([], "params", "object"),
        ({"colour": 1}, "colour", "allowed"),
        ({"temperature": "0.5"}, "temperature", "number"),
        ({"temperature": True}, "temperature", "number"),
        ({"temperature": -0.1}, "temperature", "[0, 2]"),
        ({"temperature": 2.01}, "temperature", "[0, 2]"),
        ({"temperature": math.nan}, "temperature", "finite"),
        ({"top_p": 0}, "top_p", "(0, 1]"),
        ({"top_p": 1.5}, "top_p", "(0, 1]"),
        ({"top_k": 2.5}, "top_k", "integer"),
        ({"top_k": -1}, "top_k", "[0, 1000]"),
        ({"max_tokens": 0}, "max_tokens", "[1, 4096]"),
        ({"max_tokens": 4097}, "max_tokens", "[1, 4096]"),
        ({"max_tokens": 10.0}, "max_tokens", "integer"),
        ({"repetition_penalty": 0.5}, "repetition_penalty", "[1, 2]"),
        ({"seed": -1}, "seed", "[0, 4294967295]"),
        ({"seed": 2**32}, "seed", "[0, 4294967295]"),
        ({"seed": "42"}, "seed", "integer"),
    ],
)
def test_bad_values_name_the_parameter_and_the_allowed_range(raw: object, name: str, words: str) -> None:
    with pytest.raises(ParamError) as error:
        parse(raw)
    assert error.value.name == name
    assert words in str(error.value)


def test_a_null_seed_means_no_seed() -> None:
    assert parse({"seed": None}).seed is None


def test_clients_cannot_turn_off_eos() -> None:
    with pytest.raises(ParamError) as error:
        parse({"ignore_eos": True})
    assert error.value.name == "ignore_eos"
