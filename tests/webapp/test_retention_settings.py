"""The retention settings: defaults, and a value out of range refused at start with what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import webapp.settings as s; print(s.RETENTION_DAYS, s.RETENTION_CHOICES_DAYS, s.TEMPORARY_CHAT_HOURS,"
    " s.RETENTION_INTERVAL_S, s.RETENTION_BATCH_SIZE, sorted(s.CELERY_BEAT_SCHEDULE))"
)
NAMES = (
    "RETENTION_DAYS",
    "RETENTION_CHOICES_DAYS",
    "TEMPORARY_CHAT_HOURS",
    "RETENTION_INTERVAL_S",
    "RETENTION_BATCH_SIZE",
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in NAMES}
    return subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT,
        env={**clean, "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_defaults_keep_for_ever_and_end_temporary_chats_after_a_day() -> None:
    result = settings_with()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 [30, 90, 365] 24 900 200 ['apply-retention']"
    # No interval: no schedule (the command still runs retention by hand).
    assert settings_with(RETENTION_INTERVAL_S="0").stdout.strip().endswith("[]")


@pytest.mark.parametrize(
    "env",
    [
        {"RETENTION_DAYS": "-1"},
        {"TEMPORARY_CHAT_HOURS": "0"},
        {"RETENTION_BATCH_SIZE": "0"},
        {"RETENTION_INTERVAL_S": "-5"},
        {"RETENTION_CHOICES_DAYS": "30,0"},
    ],
)
def test_a_value_out_of_range_refuses_to_start(env: dict[str, str]) -> None:
    result = settings_with(**env)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert next(iter(env)) in result.stderr.splitlines()[-1]
