"""The organising limits: defaults, and a value out of range refused at start with what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("MAX_FOLDERS", "MAX_BULK_CONVERSATIONS")


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in NAMES}
    return subprocess.run(
        [sys.executable, "-c", "import webapp.settings as s; print(s.MAX_FOLDERS, s.MAX_BULK_CONVERSATIONS)"],
        cwd=ROOT,
        env={**clean, "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_defaults() -> None:
    result = settings_with()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 200"


@pytest.mark.parametrize("env", [{"MAX_FOLDERS": "0"}, {"MAX_BULK_CONVERSATIONS": "-1"}])
def test_a_value_out_of_range_refuses_to_start(env: dict[str, str]) -> None:
    result = settings_with(**env)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert next(iter(env)) in result.stderr.splitlines()[-1]
