"""Start the test OpenID Connect provider (serve.py) as its own process, on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def oidc_provider(
    folder: Path, *, port: int, users: dict[str, dict[str, object]], client: dict[str, str]
) -> Iterator[str]:
    """Serve until the block ends; yields the issuer URL."""
    env = {
        **os.environ,
        "OIDC_PROVIDER_USERS": json.dumps(users),
        "OIDC_PROVIDER_CLIENT": json.dumps(client),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(folder / "provider.log", "w")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.oidc_provider.serve", str(port), str(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if line.strip() != "ready":
            process.wait(timeout=10)
            raise RuntimeError(
                f"the test provider did not start: {(folder / 'provider.log').read_text()[-2000:]}"
            )
        yield f"http://127.0.0.1:{port}/o"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
