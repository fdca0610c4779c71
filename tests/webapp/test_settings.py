"""Where the secret key comes from: the environment, else the checkout's key file, else refusal.

Settings are read once per process, so each case imports them in a fresh one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from webapp import secret_key

ROOT = Path(__file__).resolve().parents[2]
PRINT_KEY = "import webapp.settings as s; print(s.SECRET_KEY); print(s.DEBUG)"


def settings_in_a_fresh_process(key_file: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE"}}
    return subprocess.run(
        [sys.executable, "-c", PRINT_KEY],
        cwd=ROOT,
        env={**clean, "SECRET_KEY_FILE": str(key_file), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_key_in_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-the-file\n")
    result = settings_in_a_fresh_process(key_file, SECRET_KEY="from-the-environment")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-the-environment", "False"]


def test_with_no_key_in_the_environment_the_file_is_read(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-the-file\n")
    result = settings_in_a_fresh_process(key_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-the-file", "False"]


def test_debug_off_with_no_key_and_no_file_refuses_to_start(tmp_path: Path) -> None:
    result = settings_in_a_fresh_process(tmp_path / "absent")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr and "make run" in result.stderr
    assert not (tmp_path / "absent").exists(), "settings must never create the key"


def test_an_empty_file_is_no_key(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("\n")
    assert "SECRET_KEY is required" in settings_in_a_fresh_process(key_file).stderr


def test_debug_with_no_key_and_no_file_runs_on_the_development_key(tmp_path: Path) -> None:
    result = settings_in_a_fresh_process(tmp_path / "absent", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dev-only-insecure-key-never-use-in-production", "True"]


def test_the_default_file_is_at_the_top_of_the_checkout_and_git_ignores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    assert secret_key.key_path() == ROOT / ".secret_key"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".secret_key"], cwd=ROOT)
    assert ignored.returncode == 0, ".secret_key must be ignored by git"
    monkeypatch.setenv("SECRET_KEY_FILE", "/elsewhere/key")
    assert secret_key.key_path() == Path("/elsewhere/key")


def test_the_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    made = subprocess.run(
        [sys.executable, "webapp/secret_key.py"],  # as scripts/run.sh runs it
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0 and str(key_file) in made.stdout, made.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = secret_key.read_key(key_file)
    assert len(key) >= 50
    # A second start keeps it: sessions and signed links stay valid across restarts.
    assert secret_key.ensure_key(key_file) is False and secret_key.read_key(key_file) == key
    assert (
        secret_key.ensure_key(tmp_path / "other") is True and secret_key.read_key(tmp_path / "other") != key
    )


def test_each_pytest_xdist_worker_reads_a_redis_prefix_of_its_own() -> None:
    """Settings are read before the root conftest.py runs in a worker (tests/support/xdist_prefix.py)."""
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        pytest.skip("not under pytest-xdist")
    assert settings.REDIS_PREFIX.endswith(f"-{worker}")
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] == f"{settings.REDIS_PREFIX}:layer"
