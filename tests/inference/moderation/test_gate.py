"""The streaming gate: hold back, redact before release, block before any part is out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inference.moderation.base import Action, ModerationContext, apply_spans
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.gate import StreamGate
from inference.moderation.pii import PiiHook
from inference.moderation.rules import Rule, RulesHook

CTX = ModerationContext("c", "m", "u")
RULES = RulesHook(
    [
        Rule("violence_and_threats", "redact", "word", "kill"),
        Rule("law", "redact", "phrase", "secret plan"),
        Rule("financial", "flag", "word", "money"),
    ]
)
BLOCK = RulesHook([Rule("dangerous_and_criminal_content", "block", "phrase", "burn it down")])


def chain(hook: object) -> ModerationChain:
    return ModerationChain([(hook, HookPolicy(budget_ms=1000))])  # type: ignore[list-item]


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def run(gate: StreamGate, deltas: list[str]) -> list:
    outs = [gate.feed(d) for d in deltas]
    return [*outs, gate.finish()]


WORDS = st.sampled_from(
    [
        "kill",
        "KILL",
        "k i l l",
        "skill",
        "secret",
        "plan",
        "secret-plan",
        "money",
        "burn",
        "it",
        "down",
        "x",
        "ok",
    ]
)
SEPS = st.sampled_from([" ", "  ", ", ", "-", "\n", ". "])


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(WORDS, SEPS), max_size=25))
    return "".join(w + s for w, s in parts) + draw(st.text(max_size=5))


@settings(max_examples=150, deadline=None)
@given(texts(), st.lists(st.integers(0, 300), max_size=30), st.sampled_from([16, 32, 64]))
def test_releases_equal_the_redacted_text_whatever_the_split(
    text: str, cuts: list[int], holdback: int
) -> None:
    gate = StreamGate(chain(RULES), CTX, holdback_chars=holdback)
    outs = run(gate, split(text, cuts))
    expected = apply_spans(text, RULES.check_output(CTX, text).spans)
    assert "".join(o.release for o in outs) == expected == gate.released
    assert gate.original == text
    assert not any(o.blocked for o in outs)


@settings(max_examples=150, deadline=None)
@given(
    texts(),
    texts(),
    st.lists(st.integers(0, 400), max_size=40),
    st.sampled_from(["burn it down", "BURN-it  d0wn"]),
)
def test_a_block_phrase_never_appears_in_a_release(
    before: str, after: str, cuts: list[int], phrase: str
) -> None:
    text = f"{before} {phrase} {after}"
    gate = StreamGate(chain(BLOCK), CTX, holdback_chars=16)
    outs = run(gate, split(text, cuts))
    released = "".join(o.release for o in outs)
    assert any(o.blocked for o in outs)
    assert BLOCK.check_output(CTX, released).action is Action.ALLOW
    assert len(released) <= text.index(phrase)
    assert text.startswith(released)  # BLOCK hook has no redactions
    # Once blocked, nothing more comes out.
    assert gate.feed("more text " * 10).blocked and gate.feed("x").release == ""


def test_holdback_keeps_the_tail_until_finish() -> None:
    gate = StreamGate(chain(RULES), CTX, holdback_chars=10)
    assert gate.feed("hello there").release == ""  # "hello " is checkable, but within the holdback
    out = gate.feed(", general kenobi ")
    assert out.release == "hello there, gener"  # the last 10 characters stay behind
    assert gate.finish().release
    assert gate.released == "hello there, general kenobi "


def test_an_unfinished_word_is_not_judged() -> None:
    # "kill" + "s": the word rule must not fire on the prefix of "kills", even at a tiny holdback.
    gate = StreamGate(chain(RULES), CTX, holdback_chars=0)
    outs = run(gate, ["we ", "kill", "s and ", "kill", " it"])
    assert "".join(o.release for o in outs) == "we kills and [redacted] it"


def test_verdicts_are_reported_once_with_absolute_spans() -> None:
    gate = StreamGate(chain(RULES), CTX, holdback_chars=32)
    text = "money talks; we kill the lights " + "then more words " * 6
    outs = run(gate, list(text))
    verdicts = [v for o in outs for v in o.verdicts]
    redacts = [v for v in verdicts if v.action is Action.REDACT]
    assert len(redacts) == 1 and [text[s.start : s.end] for s in redacts[0].spans] == ["kill"]
    # One verdict per check from the rules hook: the flag word rides along, reported once.
    assert len(verdicts) == 1 and redacts[0].categories == ("violence_and_threats", "financial")


def test_finish_runs_check_output_on_the_whole_reply() -> None:
    class OutputBlocker:
        name = "whole"

        def check_output(self, ctx: ModerationContext, text: str):  # noqa: ANN201
            from inference.moderation.base import Verdict

            return Verdict(Action.BLOCK if text.count("x") >= 3 else Action.ALLOW)

    gate = StreamGate(chain(OutputBlocker()), CTX, holdback_chars=4)
    assert gate.feed("x and some more x words ").release  # no check_stream: released
    final = gate.finish() if not gate.feed("x at the end").blocked else None
    assert final is not None and final.blocked and final.release == ""
    assert "end" not in gate.released


def test_pii_split_across_deltas_is_redacted_before_release() -> None:
    gate = StreamGate(chain(PiiHook()), CTX, holdback_chars=64)
    outs = run(
        gate, ["write to jo", ".doe@exam", "ple.com or call +44 20 79", "46 0958 today. " + "ok " * 30]
    )
    released = "".join(o.release for o in outs)
    assert released.startswith("write to [email] or call [phone] today.")
    assert "doe" not in released and "7946" not in released


# --- the hold-back the hooks ask for -------------------------------------------------

PII_PARTS = st.sampled_from(
    [
        "jane.doe@example.com",
        "+33 6 12 34 56 78",
        "(555) 123-4567",
        "FR76 3000 6000 0112 3456 7890 189",
        "4111 1111 1111 1111",
        "192.168.1.20",
        "Call",
        "me",
        "at",
        "or",
        "IBAN",
        "today",
        "10",
        "AM",
    ]
)


@st.composite
def pii_texts(draw: st.DrawFn) -> str:
    # Parts side by side too: two numbers in a row must still read as two.
    separators = st.sampled_from([" ", ", ", " then ", ". Then ", "\nthen "])
    parts = draw(st.lists(st.tuples(PII_PARTS, separators), max_size=14))
    return "".join(w + s for w, s in parts)


@settings(max_examples=200, deadline=None)
@given(pii_texts(), st.lists(st.integers(0, 300), max_size=40))
def test_pii_is_redacted_whatever_the_split_with_the_hold_pii_asks_for(text: str, cuts: list[int]) -> None:
    pii = PiiHook()
    gate = StreamGate(chain(pii), CTX, holdback_chars=64)
    outs = run(gate, split(text, cuts))
    # Releases are final: equal to the whole text's redaction, no part of an address ever went out.
    assert "".join(o.release for o in outs) == apply_spans(text, pii.check_output(CTX, text).spans)


def test_two_phone_numbers_side_by_side_are_both_redacted() -> None:
    verdict = PiiHook().check_output(CTX, "(555) 123-4567 (555) 123-4567")
    assert apply_spans("(555) 123-4567 (555) 123-4567", verdict.spans) == "[phone] [phone]"


def test_numbers_run_together_are_each_redacted_by_the_gate_as_by_the_whole_text() -> None:
    # "+33 6 12 34 56 78 (555)" would be a phone too, leaving "123-4567" in clear: the number
    # is cut before "(555)", so that both are whole.
    text = "+33 6 12 34 56 78 (555) 123-4567 IBAN +33 6 12 34 56 78 FR76 3000 6000 0112 3456 7890 189 "
    pii = PiiHook()
    released = "".join(o.release for o in run(StreamGate(chain(pii), CTX, holdback_chars=64), [text]))
    assert released == apply_spans(text, pii.check_output(CTX, text).spans)
    assert released == "[phone] [phone] IBAN [phone] [iban] "


def test_ordinary_text_is_released_as_its_words_complete_when_the_hooks_need_no_more() -> None:
    gate = StreamGate(ModerationChain([(PiiHook(), HookPolicy()), (RulesHook(), HookPolicy())]), CTX)
    # All but the last complete word, which PII holds in case it grows into an address.
    assert gate.feed("Hello there, my friend").release == "Hello there, "
    # A hook that says nothing of what it needs gets the whole hold-back.
    silent = StreamGate(chain(Silent()), CTX, holdback_chars=64)
    assert silent.feed("Hello there, my friend").release == ""


class Silent:
    name = "silent"

    def check_stream(self, ctx: ModerationContext, text: str):  # noqa: ANN201
        from inference.moderation.base import ALLOW

        return ALLOW
