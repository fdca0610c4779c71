"""Staff-edited rules: words, phrases and regular expressions, each with a category and an action.

Every rule matches on folded text (see `normalize`), so case, accents,
fullwidth forms, zero-width characters, common Cyrillic/Greek look-alikes
and leetspeak digits do not hide a match. Redaction spans point at the
original text.

What each kind catches (after folding; a "separator" is any character that
is not a letter or digit, underscore included):
- "word": the word standing alone (not inside a longer word), or the word
  letter-spaced with 1-3 separators between *every* letter: for "kill",
  `kill`, `KiLL`, `k1ll`, `ｋｉｌｌ`, `k i l l`, `k.i.l.l`, `k - i - l - l`; not
  `skill`, `kills`, `ki ll` (partial spacing, so "he'll" is not "hell").
- "phrase": its words in order, each as a "word" above, separated by any run
  of separators or by nothing: for "kill you", `kill you`, `kill-you`,
  `KILL...you`, `killyou`, `k i l l  y o u`.
- "regex": a Python regular expression, case-insensitive, searched on the
  folded text both with and without the leetspeak map (so `\\d` still sees
  digits). Patterns that risk catastrophic backtracking are refused (see
  `check_regex`), and the text is searched in windows of 1,024 folded
  characters overlapping by 256, so a search costs time linear in the text;
  a regex match longer than 256 characters is not guaranteed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from inference.moderation.base import (
    ALLOW,
    CATEGORIES,
    Action,
    ModerationContext,
    Span,
    Verdict,
    most_severe,
)
from inference.moderation.normalize import Folded, fold

try:  # the parser behind `re`; private, but the same tree since Python 3.5
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

Kind = Literal["word", "phrase", "regex"]
KINDS: tuple[str, ...] = ("word", "phrase", "regex")
MAX_PATTERN_CHARS = 200
REDACTED = "[redacted]"

# Regex windows: each search sees at most WINDOW folded characters.
WINDOW = 1024
OVERLAP = 256
# Bounds on a regex's quantifiers; see check_regex.
MAX_BOUNDED_REPEAT = 100
MAX_REPEAT_COST = 4 * WINDOW

_SEP = r"[\W_]"  # a separator: anything but a letter or digit
_NOT_WORD_BEFORE = r"(?<![^\W_])"
_NOT_WORD_AFTER = r"(?![^\W_])"


class RuleError(ValueError):
    """A rule cannot be used; the message says why, in words staff can act on."""


def _repeat_ops() -> set[object]:
    ops = {_sre.MAX_REPEAT, _sre.MIN_REPEAT}
    if hasattr(_sre, "POSSESSIVE_REPEAT"):  # Python 3.11+
        ops.add(_sre.POSSESSIVE_REPEAT)
    return ops


_REPEATS = _repeat_ops()


def check_regex(pattern: str) -> re.Pattern[str]:
    """Compile a rule's regex, or raise RuleError if it could hang a worker.

    Refused:
    - backreferences (`\\1`, `(?P=name)`) and conditionals (`(?(1)a|b)`);
    - lookarounds (`(?=`, `(?!`, `(?<=`, `(?<!`);
    - nested quantifiers: a quantifier (other than `?`) inside a group that is
      itself repeated, e.g. `(a+)+`, `(\\w*\\s)*`, `(ab{2})+`;
    - alternation inside a repeated group, e.g. `(a|ab)+` (write `(?:a|ab)` once,
      or a character class `[ab]+`);
    - a bounded quantifier over 100, e.g. `a{1,500}`;
    - more than one unbounded quantifier (`*`, `+`, `{n,}`) or, with bounded
      ones, a product of their maximum counts over 4,096 (one unbounded
      counts as 1,024): `.*.*x` is polynomial, not linear;
    - a pattern that matches the empty string.
    Within these rules a search costs at most about WINDOW x 4,096 steps per window.
    """
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        tree = _sre_parse.parse(pattern, re.IGNORECASE)
    except re.error as exc:
        raise RuleError(f"the regular expression does not compile: {exc}") from None
    cost = _walk(tree, repeated=False)
    if cost > MAX_REPEAT_COST:
        raise RuleError(
            "the regular expression has too many or too large quantifiers "
            "(at most one of *, + or {n,}, and bounded ones small): it could be slow"
        )
    if compiled.fullmatch(""):
        raise RuleError("the regular expression matches the empty string")
    return compiled


def _walk(items: object, *, repeated: bool) -> int:
    """Refuse the dangerous constructs in a parsed pattern; return its repeat cost."""
    cost = 1
    for op, arg in items:  # type: ignore[attr-defined]
        if op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            raise RuleError("the regular expression uses a backreference or conditional group")
        if op in (_sre.ASSERT, _sre.ASSERT_NOT):
            raise RuleError("the regular expression uses a lookahead or lookbehind")
        if op in _REPEATS:
            low, high, body = arg
            if high > 1:
                if repeated:
                    raise RuleError(
                        "the regular expression nests quantifiers, like (a+)+: catastrophic backtracking"
                    )
                if high == _sre.MAXREPEAT:
                    cost *= WINDOW * _walk(body, repeated=True)
                elif high > MAX_BOUNDED_REPEAT:
                    raise RuleError(f"a quantifier allows {high} repeats; at most {MAX_BOUNDED_REPEAT}")
                else:
                    cost *= high * _walk(body, repeated=True)
            else:
                cost *= _walk(body, repeated=repeated)
        elif op is _sre.BRANCH:
            if repeated:
                raise RuleError("the regular expression repeats an alternation, like (a|ab)+")
            for branch in arg[1]:
                cost *= _walk(branch, repeated=repeated)
        elif op is _sre.SUBPATTERN:
            cost *= _walk(arg[-1], repeated=repeated)
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            cost *= _walk(arg, repeated=repeated)
    return cost


def _word_regex(word: str) -> str:
    """A folded word, alone or letter-spaced (1-3 separators between every letter)."""
    letters = [re.escape(c) for c in word]
    if len(letters) == 1:
        return letters[0]
    return f"(?:{''.join(letters)}|{(_SEP + '{1,3}').join(letters)})"


@dataclass(frozen=True)
class Rule:
    category: str
    action: Action
    kind: Kind
    pattern: str

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise RuleError(f"unknown category {self.category!r}; one of: {', '.join(CATEGORIES)}")
        try:
            action = Action(self.action)
        except ValueError:
            raise RuleError(f"unknown action {self.action!r}; one of: flag, redact, block") from None
        if action is Action.ALLOW:
            raise RuleError("a rule's action must be flag, redact or block")
        object.__setattr__(self, "action", action)  # accept "block" as well as Action.BLOCK
        if self.kind not in KINDS:
            raise RuleError(f"unknown kind {self.kind!r}; one of: {', '.join(KINDS)}")
        if not self.pattern.strip():
            raise RuleError("the pattern is empty")
        if len(self.pattern) > MAX_PATTERN_CHARS:
            raise RuleError(f"the pattern is {len(self.pattern)} characters; at most {MAX_PATTERN_CHARS}")
        self.compiled  # noqa: B018 - validate now, not at the first message

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        """The pattern, compiled to run on folded text."""
        if self.kind == "regex":
            return check_regex(self.pattern)
        words = re.split(r"[\W_]+", fold(self.pattern).text)
        words = [w for w in words if w]
        if not words:
            raise RuleError("the pattern has no letters or digits")
        if self.kind == "word" and len(words) > 1:
            raise RuleError("a word rule is one word of letters and digits; use a phrase for several")
        body = f"{_SEP}*".join(_word_regex(w) for w in words)
        return re.compile(_NOT_WORD_BEFORE + body + _NOT_WORD_AFTER)

    def matches(self, folded: Folded, plain: Folded | None = None) -> Iterator[tuple[int, int]]:
        """Original-text spans of every match; `plain` is the text folded without leetspeak."""
        if self.kind != "regex":
            for m in self.compiled.finditer(folded.text):
                yield folded.original_span(m.start(), m.end())
            return
        seen: set[tuple[int, int]] = set()
        for view in (folded, plain or folded):
            for start, end in _windowed(self.compiled, view.text):
                if (start, end) not in seen:
                    seen.add((start, end))
                    yield view.original_span(start, end)


def _windowed(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    """Non-empty matches of `pattern` in overlapping windows of `text`."""
    step = WINDOW - OVERLAP
    start = 0
    while True:
        for m in pattern.finditer(text, start, min(start + WINDOW, len(text))):
            if m.end() > m.start():
                yield m.start(), m.end()
        if start + WINDOW >= len(text):
            return
        start += step


class RulesHook:
    """Check text against rules; the verdict takes the most severe matching rule's action."""

    name = "rules"
    policy_exempt = True  # each rule carries the action staff chose for it, over the category's policy
    # Bounded work (regexes are refused if they could backtrack): the chain runs it in
    # the calling thread, with no pool hop.
    inline = True

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = tuple(rules)

    @cached_property
    def stream_holdback_chars(self) -> int | None:
        """What the streaming gate must hold back so a match is seen whole; None with a regex rule.

        A word's longest match is letter-spaced with three separators between
        letters, a phrase's the same with three between words; twice that,
        for the invisible characters and marks that folding drops.
        """
        longest = 0
        for rule in self.rules:
            if rule.kind == "regex":
                return None
            words = [word for word in re.split(r"[\W_]+", fold(rule.pattern).text) if word]
            spaced = sum(4 * len(word) - 3 for word in words) + 3 * (len(words) - 1)
            longest = max(longest, 2 * spaced)
        return longest

    def check_input(self, ctx: ModerationContext) -> Verdict:
        text = ctx.messages[-1].get("content", "") if ctx.messages else ""
        verdict = self._check(text)
        if verdict.action is Action.REDACT:
            # What the user typed is stored as typed: a redact rule only flags it.
            return Verdict(Action.FLAG, verdict.categories, verdict.score, verdict.reason)
        return verdict

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text)

    def check_stream_many(self, items: Sequence[tuple[ModerationContext, str]]) -> list[Verdict]:
        # One hop to the chain's pool for a whole engine step's texts.
        return [self._check(text) for _, text in items]

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._check(text)

    def _check(self, text: str) -> Verdict:
        if not self.rules or not text:
            return ALLOW
        folded = fold(text)
        plain = None
        matched: list[tuple[int, Rule]] = []
        spans: list[Span] = []
        for number, rule in enumerate(self.rules, start=1):
            if rule.kind == "regex" and plain is None:
                plain = fold(text, leet=False)
            found = list(rule.matches(folded, plain))
            if not found:
                continue
            matched.append((number, rule))
            if rule.action is Action.REDACT:
                spans.extend(Span(start, end, REDACTED) for start, end in found)
        if not matched:
            return ALLOW
        categories = tuple(dict.fromkeys(rule.category for _, rule in matched))
        # Rule numbers and kinds, never the patterns: a reason may reach the user.
        reason = "rules matched: " + ", ".join(f"#{n} {r.category} {r.kind}" for n, r in matched)
        action = most_severe(rule.action for _, rule in matched)
        return Verdict(action, categories, 1.0, reason, tuple(sorted(spans, key=lambda s: s.start)))
