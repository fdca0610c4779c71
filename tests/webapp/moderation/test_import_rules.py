"""`manage.py import_rules`: every entry checked, all or nothing, idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from webapp.moderation.models import Rule

pytestmark = pytest.mark.django_db

GOOD = [
    {
        "category": "violence_and_threats",
        "action": "block",
        "kind": "phrase",
        "pattern": "launch the missiles",
    },
    {"category": "pii", "action": "redact", "kind": "regex", "pattern": "secret-[0-9]{4}"},
    {"category": "hate_and_discrimination", "action": "flag", "kind": "word", "pattern": "idiot"},
]


def write(tmp_path: Path, rules: object) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules, indent=1) if not isinstance(rules, str) else rules, encoding="utf-8")
    return path


def test_import_is_idempotent(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, GOOD)
    call_command("import_rules", str(path))
    call_command("import_rules", str(path))
    assert Rule.objects.count() == 3
    assert "3 rules read: 0 new, 3 updated." in capsys.readouterr().out


def test_a_changed_action_updates_the_rule(tmp_path: Path) -> None:
    call_command("import_rules", str(write(tmp_path, GOOD)))
    call_command("import_rules", str(write(tmp_path, [{**GOOD[0], "action": "flag"}])))
    assert Rule.objects.get(pattern="launch the missiles").action == "flag"


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ("{not json", "line 1: a rules file is a JSON list"),
        ('[{"category": "pii"', "not valid JSON"),
        ([*GOOD, {**GOOD[0], "category": "weather"}], "line"),
        ([*GOOD, {**GOOD[0], "action": "allow"}], "action must be flag, redact or block"),
        ([*GOOD, {**GOOD[0], "kind": "glob"}], "line"),
        ([*GOOD, {**GOOD[0], "pattern": ""}], "line"),
        ([*GOOD, {**GOOD[0], "pattern": "x" * 201}], "line"),
        ([*GOOD, {**GOOD[0], "kind": "regex", "pattern": "(a+)+$"}], "line"),
        ([*GOOD, {**GOOD[0], "kind": "regex", "pattern": "[unclosed"}], "line"),
        ([*GOOD, {"category": "pii", "action": "block", "kind": "word"}], "missing pattern"),
        ([*GOOD, {**GOOD[0], "owner": "me"}], "unknown field owner"),
        ([*GOOD, {**GOOD[0], "pattern": 5}], "every field of a rule is a string"),
        ([*GOOD, "launch"], "a rule is an object"),
    ],
)
def test_a_bad_entry_refuses_the_whole_file_with_its_line(tmp_path: Path, rules: object, reason: str) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("import_rules", str(write(tmp_path, rules)))
    assert reason in str(refused.value) and "Nothing was imported." in str(refused.value)
    assert not Rule.objects.exists()


def test_the_line_of_the_bad_entry_is_named(tmp_path: Path) -> None:
    bad = [*GOOD, {**GOOD[0], "kind": "glob"}]
    with pytest.raises(CommandError) as refused:
        call_command("import_rules", str(write(tmp_path, bad)))
    # indent=1: "[" on line 1, each rule takes 6 lines, the fourth starts on line 20.
    assert "line 20:" in str(refused.value)
