"""Rules: validation, folding, word/phrase/regex matching, redaction offsets."""

from __future__ import annotations

import time

import pytest

from inference.moderation.base import Action, ModerationContext, apply_spans
from inference.moderation.normalize import fold
from inference.moderation.rules import Rule, RuleError, RulesHook

CTX = ModerationContext("c", "m", "u")
KILL = Rule("violence_and_threats", Action.REDACT, "word", "kill")


def redacted(hook: RulesHook, text: str) -> str:
    return apply_spans(text, hook.check_output(CTX, text).spans)


@pytest.mark.parametrize(
    "text",
    [
        "kill",
        "KiLL",
        "k\u200bill",
        "ｋｉｌｌ",
        "кill",
        "k1ll",
        "κill",
        "kíll",
        "𝐤𝐢𝐥𝐥",
        "k i l l",
        "k.i.l.l",
        "K - I - L - L",
    ],
)
def test_word_survives_case_spacing_and_lookalikes(text: str) -> None:
    verdict = RulesHook([KILL]).check_stream(CTX, f"I will {text} it")
    assert verdict.action is Action.REDACT
    assert redacted(RulesHook([KILL]), f"I will {text} it") == "I will [redacted] it"


@pytest.mark.parametrize("text", ["skill", "kills", "killer", "ki ll", "k ill", "kil", "a kiln"])
def test_word_matches_whole_words_only(text: str) -> None:
    assert RulesHook([KILL]).check_stream(CTX, text).action is Action.ALLOW


def test_partial_spacing_is_not_a_match() -> None:
    hell = RulesHook([Rule("law", "flag", "word", "hell")])
    assert hell.check_stream(CTX, "he'll come").action is Action.ALLOW
    assert hell.check_stream(CTX, "h.e.l.l").action is Action.FLAG


@pytest.mark.parametrize(
    "text", ["kill you", "KILL-you", "kill...you", "killyou", "k i l l  y o u", "kill\nyou"]
)
def test_phrase_with_any_separators(text: str) -> None:
    hook = RulesHook([Rule("violence_and_threats", "block", "phrase", "kill you")])
    assert hook.check_stream(CTX, f"I'll {text}!").action is Action.BLOCK


@pytest.mark.parametrize("text", ["kill your", "skill you", "kill them, you"])
def test_phrase_near_misses(text: str) -> None:
    hook = RulesHook([Rule("violence_and_threats", "block", "phrase", "kill you")])
    assert hook.check_stream(CTX, text).action is Action.ALLOW


def test_redaction_spans_point_at_the_original_text() -> None:
    hook = RulesHook([KILL])
    text = "Ｉ will ｋ\u200bＩＬＬ and k i l l, ß kill"
    verdict = hook.check_output(CTX, text)
    assert [text[s.start : s.end] for s in verdict.spans] == ["ｋ\u200bＩＬＬ", "k i l l", "kill"]
    assert apply_spans(text, verdict.spans) == "Ｉ will [redacted] and [redacted], ß [redacted]"


def test_fold_keeps_a_map_back() -> None:
    folded = fold("ß\u200bＡ1")
    assert folded.text == "ssai"
    assert folded.origin == (0, 0, 2, 3)
    assert folded.original_span(1, 3) == (0, 3)
    assert fold("p4$$", leet=False).text == "p4$$"


def test_most_severe_rule_wins_and_reason_hides_patterns() -> None:
    hook = RulesHook(
        [
            Rule("violence_and_threats", "flag", "word", "fight"),
            Rule("dangerous_and_criminal_content", "block", "phrase", "napalm recipe"),
        ]
    )
    verdict = hook.check_stream(CTX, "a fight and a NAPALM recipe")
    assert verdict.action is Action.BLOCK
    assert verdict.categories == ("violence_and_threats", "dangerous_and_criminal_content")
    assert "napalm" not in verdict.reason and "#2" in verdict.reason
    assert verdict.spans == ()  # only redact rules give spans


def test_input_is_flagged_not_redacted() -> None:
    ctx = ModerationContext("c", "m", "u", ({"role": "user", "content": "kill it"},))
    verdict = RulesHook([KILL]).check_input(ctx)
    assert verdict.action is Action.FLAG and verdict.spans == ()
    block = RulesHook([Rule("violence_and_threats", "block", "word", "kill")])
    assert block.check_input(ctx).action is Action.BLOCK
    assert RulesHook([KILL]).check_input(CTX).action is Action.ALLOW


def test_regex_sees_digits_and_leetspeak() -> None:
    hook = RulesHook(
        [
            Rule("financial", "redact", "regex", r"\bacct \d{6}\b"),
            Rule("law", "flag", "regex", r"pass\w{0,4}"),
        ]
    )
    assert redacted(hook, "ACCT 123456 ok") == "[redacted] ok"
    assert hook.check_stream(CTX, "p4$$word").action is Action.FLAG


def test_regex_matches_across_windows() -> None:
    hook = RulesHook([Rule("law", "redact", "regex", r"secret \d{3}")])
    text = ("x " * 600) + "secret 123 " + ("y " * 600) + "SECRET 456"
    assert redacted(hook, text).count("[redacted]") == 2


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"category": "gossip"}, "unknown category"),
        ({"action": "shout"}, "unknown action"),
        ({"action": "allow"}, "flag, redact or block"),
        ({"kind": "glob"}, "unknown kind"),
        ({"pattern": "  "}, "empty"),
        ({"pattern": "x" * 201}, "at most 200"),
        ({"pattern": "!!!"}, "no letters"),
        ({"pattern": "two words"}, "use a phrase"),
        ({"kind": "regex", "pattern": "(a"}, "does not compile"),
        ({"kind": "regex", "pattern": "(a+)+b"}, "nests quantifiers"),
        ({"kind": "regex", "pattern": r"(\w*\s)*"}, "nests quantifiers"),
        ({"kind": "regex", "pattern": "(a|ab)+c"}, "alternation"),
        ({"kind": "regex", "pattern": r"(a)\1"}, "backreference"),
        ({"kind": "regex", "pattern": r"(?P<x>a)(?P=x)"}, "backreference"),
        ({"kind": "regex", "pattern": r"(a)?(?(1)b|c)"}, "backreference or conditional"),
        ({"kind": "regex", "pattern": "kill(?= you)"}, "lookahead"),
        ({"kind": "regex", "pattern": "(?<!s)kill"}, "lookahead or lookbehind"),
        ({"kind": "regex", "pattern": ".*.*x"}, "too many"),
        ({"kind": "regex", "pattern": r"\w+@\w+"}, "too many"),
        ({"kind": "regex", "pattern": "a{1,500}"}, "at most 100"),
        ({"kind": "regex", "pattern": "x?"}, "empty string"),
    ],
)
def test_rule_validation(kwargs: dict[str, str], reason: str) -> None:
    args = {"category": "law", "action": "block", "kind": "word", "pattern": "kill"} | kwargs
    with pytest.raises(RuleError, match=reason):
        Rule(**args)  # type: ignore[arg-type]


def test_accepted_regexes_stay_linear_on_hostile_text() -> None:
    """Catastrophic backtracking shows as super-linear growth: 10x the text must cost far less than 100x.

    A ratio of the best of two runs, not a wall-clock bound, so a loaded
    machine does not fail it (linear is ~10x, quadratic ~100x).
    """
    patterns = [r".*x", r"\w{1,30}@\w{1,30}\.com", r"(?:cat|dog)s?", r"[ab]+c", r"\s+y\d{1,4}"]
    hook = RulesHook([Rule("law", "flag", "regex", p) for p in patterns])

    def cost(size: int) -> float:
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            hook.check_output(CTX, "a" * size)
            hook.check_output(CTX, " " * size)
            best = min(best, time.perf_counter() - started)
        return best

    assert cost(20_000) < 40 * cost(2_000)


def test_action_given_as_text_becomes_an_action() -> None:
    assert Rule("law", "redact", "word", "x").action is Action.REDACT  # type: ignore[arg-type]
