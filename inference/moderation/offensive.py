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

Its verdicts are in `profanity` ("you are an idiot"), unless a sentence
that scored offensive also names a group of people (an identity term such
as "women", "muslims", "gay people", or a slur): then in
`hate_and_discrimination`. The training data labels offensive and hateful
language together, so the classifier's score cannot tell them apart; the
group named is what makes an insult hate. Either way the category's policy
decides the action.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
from scipy import sparse

from inference.moderation.base import ALLOW, PROFANITY, Action, ModerationContext, Verdict
from inference.moderation.normalize import fold

HATE = "hate_and_discrimination"
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

# Words that name a group of people by race, ethnicity, nationality, religion, sex, sexual
# orientation, gender identity or disability, matched whole (with a plural "s") on the
# normalized text: an offensive sentence that names one is hate, not mere rudeness. Nouns
# that are also first names or colours ("Christian", "black") count only as plurals or
# before a word for people.
_GROUP_WORDS = (
    "jew|jewish|muslim|moslem|islamic|hindu|sikh|arab|african|asian|latino|latina|hispanic|mexican"
    "|immigrant|migrant|refugee|foreigner|gay|lesbian|homosexual|bisexual|transgender|trans|queer"
    "|lgbt|lgbtq|gypsy|gypsies|disabled|autistic"
)
_GROUP_PLURALS = "women|blacks|whites|christians|catholics|jews|indians|chinese"
_GROUP_ADJECTIVES = "black|white|brown|christian|catholic|indian"
_PEOPLE = "people|persons?|men|women|folks?|guys|kids|boys|girls"
# Slurs: each names a group by itself.
_SLURS = "nigger|nigga|faggot|fag|dyke|kike|spic|chink|wetback|raghead|tranny|retard"
_NAMES_A_GROUP = re.compile(
    rf"\b(?:(?:{_GROUP_WORDS}|{_SLURS})s?|{_GROUP_PLURALS}|(?:{_GROUP_ADJECTIVES}) (?:{_PEOPLE}))\b"
)


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
    tfidf = _tfidf(library.vectorizer)

    def predict_prob(texts: Sequence[str]) -> Sequence[float]:
        decision = tfidf(texts) @ weights + intercepts  # [texts, models]
        return (1.0 / (1.0 + np.exp(slopes * decision + offsets))).mean(axis=1)

    return predict_prob


def _tfidf(vectorizer: Any) -> Callable[[Sequence[str]], Any]:
    """The vectorizer's `transform`, for its shipped settings (word counts, idf, l2 norm), without
    scikit-learn's per-call validation, which cost more than the arithmetic on a step's windows.
    Any other setting falls back to `transform` itself."""
    plain = (
        vectorizer.norm == "l2"
        and vectorizer.use_idf
        and not vectorizer.sublinear_tf
        and not vectorizer.binary
        and vectorizer.ngram_range == (1, 1)
    )
    if not plain:
        return vectorizer.transform
    analyze = _words(vectorizer)
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    idf: list[float] = vectorizer.idf_.tolist()
    features = len(idf)

    def transform(texts: Sequence[str]) -> Any:
        indptr, indices, data = [0], [], []
        for text in texts:
            counts: dict[int, int] = {}
            for token in analyze(text):
                column = vocabulary.get(token)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            values = [count * idf[column] for column, count in counts.items()]
            norm = math.sqrt(sum(v * v for v in values)) or 1.0
            indices += counts
            data += [v / norm for v in values]
            indptr.append(len(indices))
        return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), features))

    return transform


def _words(vectorizer: Any) -> Callable[[str], list[str]]:
    """The vectorizer's analyzer; for its shipped settings (lower-cased words of its token
    pattern, less its stop words) the same in one regex pass: scikit-learn's chain of
    partials cost ~30 µs a text, more than the words of a stream window."""
    plain = (
        vectorizer.analyzer == "word"
        and vectorizer.input == "content"
        and vectorizer.lowercase
        and vectorizer.preprocessor is None
        and vectorizer.tokenizer is None
        and vectorizer.strip_accents is None
    )
    if not plain:
        return vectorizer.build_analyzer()
    tokenize = vectorizer.build_tokenizer()
    stop_words = vectorizer.get_stop_words() or frozenset()

    def words(text: str) -> list[str]:
        return [word for word in tokenize(text.lower()) if word not in stop_words]

    return words


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


def scored_pieces(text: str) -> list[tuple[str, float]]:
    """Each piece of `text`, normalized, with its score: the higher of the raw and the normalized piece's."""
    return scored_pieces_many([text])[0]


def scored_pieces_many(texts: Sequence[str]) -> list[list[tuple[str, float]]]:
    """`scored_pieces` of each text, all scored in one call of the classifier.

    One call costs about 50 µs for one short text and 8 µs a text for sixty
    (2-core CPU, session 7): the reply loop scores a whole engine step's
    windows together.
    """
    split = [pieces(text[:MAX_CHARS]) for text in texts]
    folded = [[normalized(part) for part in parts] for parts in split]
    # Each distinct text scored once: the vectorizer lower-cases, so a piece that folding only
    # lower-cased (most prose) scores as it is, and needs no second score.
    index: dict[str, int] = {}
    for parts, norm in zip(split, folded, strict=True):
        for part, folded_part in zip(parts, norm, strict=True):
            index.setdefault(part.lower(), len(index))
            index.setdefault(folded_part.lower(), len(index))
    scores = _classifier()(list(index)) if index else ()
    return [
        [
            (folded_part, float(max(scores[index[part.lower()]], scores[index[folded_part.lower()]])))
            for part, folded_part in zip(parts, norm, strict=True)
        ]
        for parts, norm in zip(split, folded, strict=True)
    ]


def offensive_probability(text: str) -> float:
    """The probability that `text` is offensive: the highest score of its pieces, raw or normalized."""
    return offensive_probabilities([text])[0]


def offensive_probabilities(texts: Sequence[str]) -> list[float]:
    """`offensive_probability` of each text, all scored in one call of the classifier."""
    return [max((score for _, score in scored), default=0.0) for scored in scored_pieces_many(texts)]


def names_a_group(normalized_text: str) -> bool:
    """Whether `normalized_text` (see `normalized`) names a group of people: an identity term or a slur."""
    return _NAMES_A_GROUP.search(normalized_text) is not None


def offensive_category(scored: Sequence[tuple[str, float]], threshold: float) -> str:
    """`hate_and_discrimination` if a piece scored at or over `threshold` names a group, else `profanity`.

    Only the offending pieces count: a polite sentence about a group next to
    an unrelated insult is rudeness, not hate.
    """
    offending = (piece for piece, score in scored if score >= threshold)
    return HATE if any(names_a_group(piece) for piece in offending) else PROFANITY


class OffensiveLanguageHook:
    """Report text whose offensive probability reaches `threshold`, in `profanity` or `hate_and_discrimination`.

    Below `threshold` the hook allows and nothing is recorded. At or over it,
    the category's policy decides the action (`profanity`: flag by default);
    `action` is the verdict's own, for a chain without policies.
    """

    name = "offensive"
    inline = True  # a linear model over its text: the chain runs it in the calling thread
    # It scores whole sentences: no hold-back makes a sentence whole before its end
    # arrives, so it asks for none; a block cuts the reply where it is seen.
    stream_holdback_chars = 0

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
        return [self._verdict(scored) for scored in scored_pieces_many([text for _, text in items])]

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text)

    def _check(self, text: str) -> Verdict:
        return self._verdict(scored_pieces(text))

    def _verdict(self, scored: Sequence[tuple[str, float]]) -> Verdict:
        score = max((s for _, s in scored), default=0.0)
        if score < self.threshold:
            return ALLOW
        category = offensive_category(scored, self.threshold)
        # The reason stays the same from one window to the next, so the gate reports it once.
        aimed = ", naming a group" if category == HATE else ""
        reason = f"offensive language{aimed} (p >= {self.threshold:g})"
        return Verdict(self.action, (category,), score, reason)
