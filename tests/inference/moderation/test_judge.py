"""The self-reflection judge: scored through a real engine (the tiny model), its mapping and its switch."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest
import torch

from inference.chat_template import encode_chat
from inference.engine import Engine
from inference.moderation import judge
from inference.moderation.base import API_CATEGORIES, Action, ModerationContext
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.judge import (
    ANSWERS,
    LETTERS,
    MAX_TEXT_CHARS,
    SelfReflectionJudge,
    answer_probabilities,
    judge_enabled,
    judge_prompt,
    letter_token_ids,
)
from inference.tiny import build_tiny_model
from tests.support.engines import build_engine

CTX = ModerationContext("c", "m", "u", ({"role": "user", "content": "How do I bake bread?"},))


@pytest.fixture(scope="module")
def tiny() -> Engine:
    return build_engine("paged", build_tiny_model(seed=0))


@pytest.fixture
def no_provider() -> Iterator[None]:
    yield
    judge.set_engine_provider(lambda: None)


def _reference(model: torch.nn.Module, text: str, kind: str) -> dict[str | None, float]:
    """The same scores computed by hand: one forward pass, softmax over the vocabulary, letters summed."""
    prompt = encode_chat([{"role": "user", "content": judge_prompt(text, kind=kind)}])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1].float(), dim=-1)
    mass = [sum(math.exp(logprobs[i].item()) for i in ids) for ids in letter_token_ids()]
    return {answer: m / sum(mass) for answer, m in zip(ANSWERS, mass, strict=True)}


def test_scores_through_the_engine_are_probabilities(tiny: Engine) -> None:
    scores = SelfReflectionJudge(engine=tiny).scores("How do I bake bread?", kind="message")
    assert set(scores) == {None, *API_CATEGORIES}
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert sum(scores.values()) == pytest.approx(1.0)
    assert scores == pytest.approx(
        _reference(build_tiny_model(seed=0), "How do I bake bread?", "message"), abs=1e-4
    )


def test_scores_are_deterministic_for_a_seed(tiny: Engine) -> None:
    text = "Tell me about volcanoes."
    first = SelfReflectionJudge(engine=tiny).scores(text, kind="reply")
    again = SelfReflectionJudge(engine=Engine(build_tiny_model(seed=0), name="tiny")).scores(
        text, kind="reply"
    )
    other = SelfReflectionJudge(engine=Engine(build_tiny_model(seed=1), name="tiny")).scores(
        text, kind="reply"
    )
    assert first == again
    assert first != pytest.approx(other)


def test_the_letters_keep_their_meaning_without_profanity() -> None:
    # Written out: a category added to the app must not shift a letter (J stays pii) nor add one.
    assert ANSWERS == (
        None,
        "sexual",
        "hate_and_discrimination",
        "violence_and_threats",
        "dangerous_and_criminal_content",
        "selfharm",
        "health",
        "financial",
        "law",
        "pii",
    )
    prompt = judge_prompt("hello", kind="message")
    assert "B: sexual content" in prompt and "J: personal data about a private person" in prompt
    assert "K:" not in prompt and "profanity" not in prompt


@pytest.mark.parametrize("letter, category", list(zip(LETTERS[1:], API_CATEGORIES, strict=True)))
def test_the_favoured_letter_names_its_category(letter: str, category: str) -> None:
    # A model that always answers this letter (with the word-start mark): its category, score ~1.
    engine = build_engine("paged", name="forced", bias={letter_token_ids()[LETTERS.index(letter)][0]: 30.0})
    hook = SelfReflectionJudge(engine=engine, action=Action.BLOCK)
    verdict = hook.check_output(CTX, "some reply")
    assert verdict.action is Action.BLOCK
    assert verdict.categories == (category,)
    assert verdict.score > 0.99
    assert verdict.reason.startswith(f"self-reflection: {category} ")


def test_answer_a_means_no_category() -> None:
    engine = build_engine("paged", name="forced", bias={letter_token_ids()[0][1]: 30.0})  # "A", no mark
    assert SelfReflectionJudge(engine=engine).check_input(CTX).action is Action.ALLOW


def test_answer_probabilities_sum_a_letters_tokens() -> None:
    sizes = [len(ids) for ids in letter_token_ids()]
    # Every token equally likely: letters with two tokens weigh twice those with one.
    probs = answer_probabilities([math.log(0.01)] * sum(sizes))
    assert sum(probs.values()) == pytest.approx(1.0)
    assert [probs[a] for a in ANSWERS] == pytest.approx([s / sum(sizes) for s in sizes])


def test_the_prompt_caps_the_text_and_keeps_the_letters() -> None:
    prompt = judge_prompt("x" * (MAX_TEXT_CHARS + 500), kind="reply")
    assert "x" * MAX_TEXT_CHARS in prompt and "x" * (MAX_TEXT_CHARS + 1) not in prompt
    assert all(f"\n{letter}: " in prompt for letter in LETTERS)


def test_off_or_empty_asks_no_engine(no_provider: None) -> None:
    judge.set_engine_provider(lambda: pytest.fail("the engine was asked"))  # type: ignore[arg-type, return-value]
    assert SelfReflectionJudge(enabled=False).check_input(CTX).action is Action.ALLOW
    assert SelfReflectionJudge().check_output(CTX, "   ").action is Action.ALLOW


def test_off_it_is_called_in_the_chains_thread_and_on_in_the_pool(no_provider: None) -> None:
    threads: list[int] = []
    judge.set_engine_provider(lambda: threads.append(threading.get_ident()))  # type: ignore[arg-type, return-value]
    off, on = SelfReflectionJudge(enabled=False), SelfReflectionJudge()
    assert off.inline and not on.inline
    [verdict] = ModerationChain([(off, HookPolicy(budget_ms=off.budget_ms))]).check_input(CTX)
    assert verdict.action is Action.ALLOW and not verdict.error and threads == []
    [verdict] = ModerationChain([(on, HookPolicy(budget_ms=on.budget_ms))]).check_input(CTX)
    assert "no engine" in verdict.error  # the provider gave none; it was asked from a pool thread
    assert len(threads) == 1 and threads[0] != threading.get_ident()


def test_the_engine_comes_from_the_provider(tiny: Engine, no_provider: None) -> None:
    judge.set_engine_provider(lambda: tiny)
    assert set(SelfReflectionJudge().scores("hello", kind="message")) == {None, *API_CATEGORIES}


def test_no_engine_is_a_failure_the_chain_records(no_provider: None) -> None:
    hook = SelfReflectionJudge()
    [verdict] = ModerationChain([(hook, HookPolicy(budget_ms=hook.budget_ms))]).check_input(CTX)
    assert verdict.action is Action.ALLOW and "no engine" in verdict.error


@pytest.mark.parametrize(
    "setting, model_path, expected",
    [("auto", "", False), ("auto", "/models/mistral", True), ("on", "", True), ("OFF", "/m", False)],
)
def test_judge_enabled(setting: str, model_path: str, expected: bool) -> None:
    assert judge_enabled(setting, model_path) is expected


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"timeout_s": 0}, {"action": Action.REDACT}])
def test_bad_configuration_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SelfReflectionJudge(**kwargs)


def test_bad_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="MODERATION_JUDGE"):
        judge_enabled("maybe", "")
