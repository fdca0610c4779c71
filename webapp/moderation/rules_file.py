"""Reading a rules file: a JSON list of {"category", "action", "kind", "pattern"}, every entry checked."""

from __future__ import annotations

import json
from dataclasses import dataclass

from inference.moderation.base import Action
from inference.moderation.rules import Rule as RuleSpec
from inference.moderation.rules import RuleError

FIELDS = {"category", "action", "kind", "pattern"}


class RulesFileError(ValueError):
    """The file is refused whole; the message names the line and the reason."""


@dataclass(frozen=True)
class RuleEntry:
    line: int
    spec: RuleSpec


def parse_rules(text: str) -> list[RuleEntry]:
    """Every entry of the file, checked; the first bad one refuses the whole file."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if not text.startswith("[", position):
        raise RulesFileError("line 1: a rules file is a JSON list of rules.")
    position = _skip(text, position + 1)
    entries: list[RuleEntry] = []
    while not text.startswith("]", position):
        line = text.count("\n", 0, position) + 1
        try:
            raw, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise RulesFileError(f"line {error.lineno}: not valid JSON ({error.msg}).") from None
        entries.append(RuleEntry(line, _check_entry(raw, line)))
        position = _skip(text, position)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif not text.startswith("]", position):
            raise RulesFileError(f"line {text.count(chr(10), 0, position) + 1}: expected ',' or ']'.")
    if _skip(text, position + 1) != len(text):
        raise RulesFileError(f"line {text.count(chr(10), 0, position) + 1}: text after the end of the list.")
    return entries


def _check_entry(raw: object, line: int) -> RuleSpec:
    if not isinstance(raw, dict):
        raise RulesFileError(f"line {line}: a rule is an object with {', '.join(sorted(FIELDS))}.")
    if set(raw) != FIELDS:
        missing, extra = sorted(FIELDS - set(raw)), sorted(set(raw) - FIELDS)
        detail = f"missing {', '.join(missing)}" if missing else f"unknown field {', '.join(extra)}"
        raise RulesFileError(f"line {line}: {detail}.")
    if not all(isinstance(raw[name], str) for name in FIELDS):
        raise RulesFileError(f"line {line}: every field of a rule is a string.")
    if raw["action"] not in {a.value for a in Action if a != Action.ALLOW}:
        raise RulesFileError(f"line {line}: action must be flag, redact or block, not {raw['action']!r}.")
    try:
        return RuleSpec(raw["category"], Action(raw["action"]), raw["kind"], raw["pattern"])
    except RuleError as error:
        raise RulesFileError(f"line {line}: {error}") from None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
