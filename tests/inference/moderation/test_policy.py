"""Category policies: a verdict's action set by its categories' policies and its score."""

from __future__ import annotations

import pytest

from inference.moderation.base import Action, ModerationContext, Span, Stage, Verdict
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.pii import PiiHook
from inference.moderation.policy import apply_policy
from inference.moderation.rules import Rule, RulesHook

A = Action
POLICIES = {
    "hate_and_discrimination": (A.BLOCK, 0.8),
    "health": (A.FLAG, 0.5),
    "pii": (A.REDACT, 0.5),
    "law": (A.ALLOW, 0.3),
}
SPAN = (Span(0, 4, "[x]"),)
CTX = ModerationContext("c", "m", "u", ({"role": "user", "content": "mail me at a@b.example"},))


@pytest.mark.parametrize(
    ("verdict", "stage", "expected"),
    [
        # At or over the threshold: the policy's action, whatever the hook said.
        (Verdict(A.FLAG, ("hate_and_discrimination",), 0.8), Stage.STREAM, A.BLOCK),
        (Verdict(A.ALLOW, ("hate_and_discrimination",), 0.95), Stage.OUTPUT, A.BLOCK),
        (Verdict(A.BLOCK, ("health",), 0.9), Stage.STREAM, A.FLAG),
        (Verdict(A.BLOCK, ("law",), 0.3), Stage.STREAM, A.ALLOW),
        # Below: at most flag, and allow stays allow.
        (Verdict(A.BLOCK, ("hate_and_discrimination",), 0.79), Stage.STREAM, A.FLAG),
        (Verdict(A.ALLOW, ("hate_and_discrimination",), 0.5), Stage.STREAM, A.ALLOW),
        (Verdict(A.BLOCK, ("law",), 0.1), Stage.STREAM, A.ALLOW),  # never more than the policy
        # Several categories: the most severe policy reached.
        (Verdict(A.FLAG, ("health", "hate_and_discrimination"), 0.85), Stage.STREAM, A.BLOCK),
        (Verdict(A.FLAG, ("health", "hate_and_discrimination"), 0.6), Stage.STREAM, A.FLAG),
        # Redact: with spans on the stream; flag on the input; block when nothing can be cut.
        (Verdict(A.FLAG, ("pii",), 1.0, spans=SPAN), Stage.STREAM, A.REDACT),
        (Verdict(A.FLAG, ("pii",), 1.0), Stage.INPUT, A.FLAG),
        (Verdict(A.FLAG, ("pii",), 1.0), Stage.OUTPUT, A.BLOCK),
        # Left alone: no policy for the category, no category, a failed hook.
        (Verdict(A.BLOCK, ("sexual",), 0.1), Stage.STREAM, A.BLOCK),
        (Verdict(A.BLOCK, (), 0.1), Stage.STREAM, A.BLOCK),
        (Verdict(A.BLOCK, ("health",), 0.9, error="timeout"), Stage.STREAM, A.BLOCK),
    ],
)
def test_policy_sets_the_action(verdict: Verdict, stage: Stage, expected: Action) -> None:
    assert apply_policy(verdict, POLICIES, stage).action is expected


def test_a_changed_action_says_which_policy() -> None:
    out = apply_policy(Verdict(A.FLAG, ("hate_and_discrimination",), 0.9, "slur"), POLICIES, Stage.STREAM)
    assert out.reason == "slur (policy hate_and_discrimination: block at score >= 0.8)"


class Scored:
    """A classifier-like hook: reports a category and a score, and leaves the action to policy."""

    name = "scored"

    def __init__(self, score: float) -> None:
        self.score = score

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        return Verdict(A.ALLOW, ("hate_and_discrimination",), self.score)


def chain(*hooks: object, policies=POLICIES) -> ModerationChain:
    return ModerationChain([(hook, HookPolicy(budget_ms=1000)) for hook in hooks], policies)


def test_the_chain_applies_policies_and_stops_after_a_policy_block() -> None:
    [verdict] = chain(Scored(0.9), PiiHook()).check_stream(CTX, "text")
    assert verdict.action is A.BLOCK and verdict.hook == "scored"
    verdicts = chain(Scored(0.2), PiiHook()).check_stream(CTX, "text")
    assert [v.action for v in verdicts] == [A.ALLOW, A.ALLOW]


def test_without_policies_the_hooks_own_actions_stand() -> None:
    assert chain(Scored(0.99), policies=None).check_stream(CTX, "text")[0].action is A.ALLOW


def test_pii_follows_its_policy() -> None:
    text = "write to a@b.example"
    assert chain(PiiHook()).check_stream(CTX, text)[0].action is A.REDACT
    blocked = chain(PiiHook(), policies={"pii": (A.BLOCK, 0.5)}).check_stream(CTX, text)
    assert blocked[0].action is A.BLOCK
    allowed = chain(PiiHook(), policies={"pii": (A.ALLOW, 0.5)}).check_stream(CTX, text)
    assert allowed[0].action is A.ALLOW


def test_rules_keep_their_own_action() -> None:
    rules = RulesHook([Rule("health", A.BLOCK, "phrase", "miracle cure")])
    [verdict] = chain(rules).check_stream(CTX, "a miracle cure for all")
    assert verdict.action is A.BLOCK  # the health policy (flag) does not soften a rule staff chose
