"""Facts about the processes: what the web process imports, what production refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    # Not the key file `make run` leaves in a developer's checkout.
    clean["SECRET_KEY_FILE"] = str(ROOT / ".run" / "no-such-key")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_web_process_never_imports_torch() -> None:
    code = (
        "import sys, webapp.asgi, webapp.chat.consumers, webapp.chat.services, webapp.chat.views;"
        "bad = [m for m in ('torch', 'transformers', 'inference.engine', 'inference.tasks') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = run_python(code, DEBUG="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = run_python(
        "import django; import os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup()"
    )
    assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr


def test_production_with_a_secret_key_starts() -> None:
    result = run_python(
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup();"
        "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE)",
        SECRET_KEY="s" * 50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False True"
