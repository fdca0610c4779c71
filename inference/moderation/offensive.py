"""Offensive language: the alt-profanity-check classifier, whose weights ship on PyPI.

A linear SVM over a bag of words (scikit-learn), trained on offensive and
hateful tweets; it gives the probability that a text is offensive. It runs
offline and fast (well under a millisecond per text here), and loads once
per process, at the first hook built (about a second).

What it catches: insults, slurs and profanity in English ("you stupid
bitch"), whatever the case. Spacing and look-alikes defeat a bag of words
("f u c k", "ıdіot"), so each text is also scored after folding (case,
look-alikes, leetspeak: `normalize.fold`) and joining runs of single
letters ("f u c k" -> "fuck"); the higher of the two scores counts. What it
does not catch: threats or hate phrased politely, other languages, context
(quoting an insult to ask what it means scores like the insult).

Its verdicts are in `hate_and_discrimination`: the training data labels
offensive and hateful language together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from inference.moderation.base import ALLOW, Action, ModerationContext, Verdict
from inference.moderation.normalize import fold

CATEGORY = "hate_and_discrimination"
# The classifier sees at most this much of a text: a bag of words gains little
# from more, and the time grows with the length.
MAX_CHARS = 4000

# A sentence longer than this many words is scored in pieces of this many.
PIECE_WORDS = 24
_SENTENCE_END = re.compile(r"(?<=[.!?;\n])\s+")

# Three or more single letters, each pair split by the same spaces or light
# punctuation: "f u c k", "i.d.i.o.t"; the same separator throughout, so "a
# b-i-t-c-h" joins to "a bitch", not "abitch".
_SPACED = re.compile(r"(?<!\w)\w(?P<sep>[ ._*-]{1,3})(?:\w(?P=sep))+\w(?!\w)")


@cache
def _classifier() -> Callable[[Sequence[str]], Sequence[float]]:
    """The classifier, loaded at the first call (importing `profanity_check` loads the weights).

    The shipped model is five linear SVMs, each with a sigmoid calibration,
    averaged (scikit-learn's CalibratedClassifierCV). Its `predict_proba`
    spends about 3 ms per call validating and looping; the same arithmetic as
    one sparse product takes a tenth of that, which matters at every stream
    window. Any other model shape falls back to the library's `predict_prob`.
    """
    from profanity_check import profanity_check as library

    fast = _linear_sigmoid(library.model)
    if fast is None:
        return library.predict_prob
    weights, intercepts, slopes, offsets = fast
    vectorizer = library.vectorizer

    def predict_prob(texts: Sequence[str]) -> Sequence[float]:
        decision = vectorizer.transform(texts) @ weights + intercepts  # [texts, models]
        return (1.0 / (1.0 + np.exp(slopes * decision + offsets))).mean(axis=1)

    return predict_prob


def _linear_sigmoid(model: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(weights, intercepts, slopes, offsets) of a binary, sigmoid-calibrated ensemble of linear models."""
    members = getattr(model, "calibrated_classifiers_", None)
    if (
        getattr(model, "method", None) != "sigmoid"
        or not members
        or list(getattr(model, "classes_", [])) != [0, 1]
    ):
        return None
    try:
        weights = np.stack([m.estimator.coef_[0] for m in members], axis=1)
        intercepts = np.array([m.estimator.intercept_[0] for m in members])
        slopes = np.array([m.calibrators[0].a_ for m in members])
        offsets = np.array([m.calibrators[0].b_ for m in members])
    except (AttributeError, IndexError):
        return None
    return weights, intercepts, slopes, offsets


def load_classifier() -> None:
    """Load the weights now, outside any time budget (idempotent)."""
    _classifier()


def normalized(text: str) -> str:
    """`text` folded (case, look-alikes, leetspeak) with spaced-out letters joined."""
    folded = fold(text).text
    return _SPACED.sub(lambda m: m.group().replace(m.group("sep"), ""), folded)


def pieces(text: str) -> list[str]:
    """`text` in sentences, a long one cut every PIECE_WORDS words: what the classifier scores one by one.

    A bag of words averages over its text, so one insult in a long, polite
    reply scores low; scored alone, the insult's sentence counts in full.
    """
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        out.extend(" ".join(words[i : i + PIECE_WORDS]) for i in range(0, len(words), PIECE_WORDS))
    return out


def offensive_probability(text: str) -> float:
    """The probability that `text` is offensive: the highest score of its pieces, raw or normalized."""
    return offensive_probabilities([text])[0]


def offensive_probabilities(texts: Sequence[str]) -> list[float]:
    """`offensive_probability` of each text, all scored in one call of the classifier.

    One call costs about 0.9 ms for one text and 0.02 ms a text for sixty:
    the reply loop scores a whole engine step's windows together.
    """
    owners: list[int] = []
    candidates: list[str] = []
    for index, text in enumerate(texts):
        parts = pieces(text[:MAX_CHARS])
        candidates += parts + [normalized(part) for part in parts]
        owners += [index] * (2 * len(parts))
    scores = [0.0] * len(texts)
    if candidates:
        for owner, score in zip(owners, _classifier()(candidates), strict=True):
            scores[owner] = max(scores[owner], float(score))
    return scores


class OffensiveLanguageHook:
    """Flag (or block, by `action`) text whose offensive probability reaches `threshold`."""

    name = "offensive"
    inline = True  # a linear model over a bounded text: the reply loop runs it in its own thread
    # Profanity is not one of the nine categories: it is filed under hate_and_discrimination
    # for want of a better one, and the category's policy (block at 0.8 by default) would turn
    # every swear word into a blocked reply. The hook's own threshold and action decide.
    policy_exempt = True

    def __init__(self, *, threshold: float = 0.9, action: Action = Action.FLAG) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if action in (Action.ALLOW, Action.REDACT):
            raise ValueError("the action must be flag or block: a score has no span to redact")
        self.threshold = threshold
        self.action = action
        load_classifier()  # here, not in the first check, which has a time budget

    def check_input(self, ctx: ModerationContext) -> Verdict:
        return self._check(ctx.messages[-1].get("content", "") if ctx.messages else "")

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text)

    def check_stream_many(self, items: Sequence[tuple[ModerationContext, str]]) -> list[Verdict]:
        return [self._verdict(score) for score in offensive_probabilities([text for _, text in items])]

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text)

    def _check(self, text: str) -> Verdict:
        return self._verdict(offensive_probability(text))

    def _verdict(self, score: float) -> Verdict:
        if score < self.threshold:
            return ALLOW
        # The reason stays the same from one window to the next, so the gate reports it once.
        reason = f"offensive language (p >= {self.threshold:g})"
        return Verdict(self.action, (CATEGORY,), score, reason)
