"""The offensive-language hook: the real classifier's predictions, spacing and look-alikes, its categories."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.moderation.base import PROFANITY, Action, ModerationContext
from inference.moderation.chain import HookPolicy, ModerationChain
from inference.moderation.offensive import (
    HATE,
    MAX_CHARS,
    PIECE_WORDS,
    OffensiveLanguageHook,
    _classifier,
    _linear_sigmoid,
    names_a_group,
    normalized,
    offensive_probabilities,
    offensive_probability,
    pieces,
)

CTX = ModerationContext("c", "m", "u")

OFFENSIVE = [
    "you are a fucking idiot",
    "shut up you stupid bitch",
    "FUCK OFF",
]
BENIGN = [
    "Could you help me write a cover letter for a job at a bank?",
    "The weather is lovely today, let's go for a walk.",
    "Python is a great language for data science.",
    "I went to an a b c meeting about killer whales.",
]
# Spacing, punctuation and look-alikes that a bag of words misses on the raw text.
DISGUISED = [
    "f u c k you",
    "what a b-i-t-c-h",
    "you ıdіot",  # dotless i, Cyrillic i
    "ｆｕｃｋ off",  # fullwidth
]


@pytest.fixture(scope="module")
def hook() -> OffensiveLanguageHook:
    return OffensiveLanguageHook(threshold=0.9)


def _ctx(text: str) -> ModerationContext:
    return ModerationContext("c", "m", "u", ({"role": "user", "content": text},))


@pytest.mark.parametrize("text", OFFENSIVE)
def test_offensive_text_is_flagged_on_every_stage(hook: OffensiveLanguageHook, text: str) -> None:
    for verdict in (hook.check_input(_ctx(text)), hook.check_stream(CTX, text), hook.check_output(CTX, text)):
        assert verdict.action is Action.FLAG
        assert verdict.categories == (PROFANITY,)
        assert 0.9 <= verdict.score <= 1.0
        assert text.lower() not in verdict.reason.lower()  # never echo the text


@pytest.mark.parametrize("text", BENIGN)
def test_benign_text_passes(hook: OffensiveLanguageHook, text: str) -> None:
    assert offensive_probability(text) < 0.5
    assert hook.check_output(CTX, text).action is Action.ALLOW
    assert hook.check_input(_ctx(text)).action is Action.ALLOW


@pytest.mark.parametrize("text", DISGUISED)
def test_disguised_insults_are_caught_through_normalization(hook: OffensiveLanguageHook, text: str) -> None:
    raw = float(_classifier()([text])[0])
    assert raw < 0.5  # the classifier alone misses it: normalization is what catches it
    assert offensive_probability(text) >= 0.9
    assert hook.check_stream(CTX, text).action is Action.FLAG


@pytest.mark.parametrize(
    "text, expected",
    [
        ("f u c k you", "fuck you"),
        ("F.U.C.K", "fuck"),
        ("what a b-i-t-c-h", "what a bitch"),  # one separator per run
        ("a b", "a b"),  # two letters are not a run
        ("I went to an a b c meeting", "i went to an abc meeting"),
    ],
)
def test_normalized_joins_spaced_letters(text: str, expected: str) -> None:
    assert normalized(text) == expected


def test_empty_and_blank_text_score_zero(hook: OffensiveLanguageHook) -> None:
    assert offensive_probability("") == 0.0
    assert offensive_probability(" \n\t ") == 0.0
    assert hook.check_input(ModerationContext("c", "m", "u")).action is Action.ALLOW


def test_one_insult_in_a_long_polite_reply_is_caught() -> None:
    # Scored whole, the polite sentences drown the insult; scored by pieces, they do not.
    polite = "Thank you for your question, here is a detailed answer about gardening. " * 20
    text = polite + "You are a stupid bitch. " + polite
    assert float(_classifier()([text])[0]) < 0.5
    assert offensive_probability(text) >= 0.9


def test_long_text_is_cut_to_the_limit() -> None:
    # An insult past the limit is not seen; one before it is, however long the rest.
    padding = "The cat sat on the mat. " * (MAX_CHARS // 10)
    assert offensive_probability(padding + "You stupid bitch.") < 0.5
    assert offensive_probability("You stupid bitch. " + padding) >= 0.9


def test_block_action_and_threshold() -> None:
    strict = OffensiveLanguageHook(threshold=0.9, action=Action.BLOCK)
    assert strict.check_output(CTX, OFFENSIVE[0]).action is Action.BLOCK
    # A threshold of 1 is reached only by a score of exactly 1.
    lenient = OffensiveLanguageHook(threshold=1.0)
    assert lenient.check_output(CTX, BENIGN[0]).action is Action.ALLOW


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"action": Action.REDACT}])
def test_bad_configuration_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        OffensiveLanguageHook(**kwargs)


def test_runs_in_the_chain_within_its_budget(hook: OffensiveLanguageHook) -> None:
    chain = ModerationChain([(hook, HookPolicy(budget_ms=2000))])
    [verdict] = chain.check_output(CTX, OFFENSIVE[1])
    assert verdict.action is Action.FLAG and verdict.hook == "offensive" and not verdict.error
    assert 0 < verdict.latency_ms < 2000


def test_pieces_are_sentences_and_long_sentences_are_cut() -> None:
    assert pieces("One. Two!  Three?\nFour") == ["One.", "Two!", "Three?", "Four"]
    long_sentence = " ".join(f"w{i}" for i in range(PIECE_WORDS * 2 + 1))
    assert [len(p.split()) for p in pieces(long_sentence)] == [PIECE_WORDS, PIECE_WORDS, 1]


def test_the_fast_path_computes_the_librarys_probabilities() -> None:
    from profanity_check import profanity_check as library

    texts = [*OFFENSIVE, *BENIGN, *DISGUISED, "", "kill them all", "ok"]
    assert list(_classifier()(texts)) == pytest.approx(list(library.predict_prob(texts)), abs=1e-9)
    assert _linear_sigmoid(library.model) is not None  # the shipped model takes the fast path
    assert _linear_sigmoid(object()) is None  # anything else falls back to the library


# Offensive sentences that name a group of people: hate, not mere rudeness.
HATEFUL = [
    "all muslims are fucking idiots",
    "gay people are stupid idiots",
    "women are stupid bitches",
    "fuck all immigrants",
    "you stupid f4gg0t",  # a slur, disguised: folded before the group is looked for
]
# Insults with a word that only looks like a group, or a group named in another sentence.
RUDE_ONLY = [
    "you are an idiot",
    "Christian is a fucking idiot",  # a first name, not Christians
    "your black shirt is fucking ugly",  # a colour, not black people
    "these fucking spices are too hot",  # not a plural of a slur
    "I love gay people. You are an idiot.",  # the group is in the polite sentence
]


def _library_score(text: str) -> float:
    """The score as the library computes it: the highest over the pieces, raw and normalized."""
    from profanity_check import profanity_check as library

    parts = pieces(text[:MAX_CHARS])
    return float(max(library.predict_prob(parts + [normalized(p) for p in parts])))


@pytest.mark.parametrize("text", RUDE_ONLY)
def test_an_insult_is_profanity(hook: OffensiveLanguageHook, text: str) -> None:
    verdict = hook.check_output(CTX, text)
    assert (verdict.action, verdict.categories) == (Action.FLAG, (PROFANITY,))
    assert verdict.reason == "offensive language (p >= 0.9)"
    assert verdict.score == pytest.approx(_library_score(text), abs=1e-9) and verdict.score >= 0.9


@pytest.mark.parametrize("text", HATEFUL)
def test_an_insult_that_names_a_group_is_hate(hook: OffensiveLanguageHook, text: str) -> None:
    for verdict in (hook.check_input(_ctx(text)), hook.check_stream(CTX, text), hook.check_output(CTX, text)):
        assert (verdict.action, verdict.categories) == (Action.FLAG, (HATE,))
        assert verdict.reason == "offensive language, naming a group (p >= 0.9)"
        # The category changes, the score does not: still the classifier's probability.
        assert verdict.score == pytest.approx(_library_score(text), abs=1e-9)
        assert verdict.score == offensive_probability(text)


def test_a_group_named_without_offence_is_not_a_verdict(hook: OffensiveLanguageHook) -> None:
    text = "Muslims, Jews and Christians all celebrate holidays in winter."
    assert names_a_group(normalized(text))
    assert hook.check_output(CTX, text).action is Action.ALLOW


@pytest.mark.parametrize(
    "text, names",
    [
        ("muslims are", True),
        ("a jew", True),
        ("black people", True),
        ("white women", True),
        ("christians", True),
        ("the lgbtq community", True),
        ("f a g g o t", True),
        ("christian", False),  # a first name
        ("black coffee", False),
        ("spices", False),
        ("jewelry", False),
        ("transport", False),
    ],
)
def test_names_a_group(text: str, names: bool) -> None:
    assert names_a_group(normalized(text)) is names


def test_the_category_policy_decides_not_the_hook() -> None:
    # No longer exempt from policies: profanity's policy acts on insults, hate's on hate.
    hook = OffensiveLanguageHook(threshold=0.9)  # its own action: flag
    policies = {PROFANITY: (Action.FLAG, 0.9), HATE: (Action.BLOCK, 0.8)}
    chain = ModerationChain([(hook, HookPolicy(budget_ms=2000))], policies)
    [insult] = chain.check_output(CTX, "you are an idiot")
    [hate] = chain.check_output(CTX, HATEFUL[0])
    assert (insult.action, insult.categories) == (Action.FLAG, (PROFANITY,))
    assert (hate.action, hate.categories) == (Action.BLOCK, (HATE,))
    blocking = ModerationChain(
        [(hook, HookPolicy(budget_ms=2000))], {**policies, PROFANITY: (Action.BLOCK, 0.9)}
    )
    [blocked] = blocking.check_input(_ctx("you are an idiot"))
    assert blocked.action is Action.BLOCK and "policy profanity: block" in blocked.reason
    allowing = ModerationChain(
        [(hook, HookPolicy(budget_ms=2000))], {**policies, PROFANITY: (Action.ALLOW, 0.5)}
    )
    [allowed] = allowing.check_stream(CTX, "you are an idiot")
    assert allowed.action is Action.ALLOW


def test_scoring_many_texts_at_once_gives_each_its_own_score() -> None:
    texts = ["you stupid bitch", "What a lovely afternoon for a walk.", "", "f u c k you. Thanks for asking!"]
    together = offensive_probabilities(texts)
    assert together == pytest.approx([offensive_probability(text) for text in texts])
    assert together[0] > 0.9 > together[1] and together[2] == 0.0


def test_the_hook_judges_a_step_of_texts_as_it_judges_each() -> None:
    hook = OffensiveLanguageHook()
    items = [(CTX, "you stupid bitch"), (CTX, "a calm and kind reply"), (CTX, "gay people are stupid idiots")]
    assert hook.check_stream_many(items) == [hook.check_stream(ctx, text) for ctx, text in items]


def test_the_own_tfidf_equals_the_vectorizers_transform() -> None:
    from profanity_check import profanity_check as library

    from inference.moderation.offensive import _tfidf

    texts = [*OFFENSIVE, *BENIGN, *DISGUISED, "", "the the the", "Ünïcode wörds and 123 numbers", "a"]
    ours, theirs = _tfidf(library.vectorizer)(texts), library.vectorizer.transform(texts)
    assert ours.shape == theirs.shape
    assert abs(ours - theirs).max() < 1e-12


def test_the_own_analyzer_gives_the_vectorizers_words() -> None:
    from profanity_check import profanity_check as library

    from inference.moderation.offensive import _words

    texts = [
        *OFFENSIVE,
        *BENIGN,
        *DISGUISED,
        "",
        "The THE the",
        "Ünïcode WÖRDS, and 123 n_m, İstanbul",
        "a b",
    ]
    texts += ["they're at the   well-known\tcafé; ÀÉÎ ǅ ﬁne", "x" * 50 + " " + "y"]
    analyzer = library.vectorizer.build_analyzer()
    assert [_words(library.vectorizer)(text) for text in texts] == [analyzer(text) for text in texts]


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_the_own_analyzer_gives_the_vectorizers_words_for_any_text(text: str) -> None:
    from profanity_check import profanity_check as library

    from inference.moderation.offensive import _words

    assert _words(library.vectorizer)(text) == library.vectorizer.build_analyzer()(text)


def test_each_distinct_text_is_scored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prose that folding only lower-cases is not scored twice (the vectorizer lower-cases anyway)."""
    from inference.moderation import offensive

    scored: list[str] = []
    real = offensive._classifier()

    def counting(texts):
        scored.extend(texts)
        return real(texts)

    monkeypatch.setattr(offensive, "_classifier", lambda: counting)
    out = offensive.scored_pieces_many(["The kettle warmed.", "the kettle warmed.", "y0u 1d10t"])
    assert sorted(scored) == ["the kettle warmed.", "y0u 1d10t", "you idiot"]
    assert out[2][0][1] == pytest.approx(1.0, abs=0.05) and out[0] == out[1]
