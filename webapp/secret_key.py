"""The secret key of a checkout: made once by `make run`, kept in a file git ignores.

Settings read it when `SECRET_KEY` is not in the environment, so the app and every
`manage.py` command run from the checkout sign with the same key. Nothing but
`make run` (`python webapp/secret_key.py`) creates the file: a production host
with neither the variable nor the file still refuses to start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / ".secret_key"


def key_path() -> Path:
    """Where the key is kept: `SECRET_KEY_FILE`, else `.secret_key` at the top of the checkout."""
    return Path(os.environ.get("SECRET_KEY_FILE") or DEFAULT_PATH)


def read_key(path: Path) -> str:
    """The key in the file, or "" when there is no file."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def ensure_key(path: Path) -> bool:
    """Create the file with a new random key, readable by its owner only; False if it was there."""
    try:
        # O_EXCL: two `make run`s at once cannot both write one; the mode is set at creation.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(50) + "\n")
    return True


if __name__ == "__main__":
    path = key_path()
    if ensure_key(path):
        print(f"A new SECRET_KEY was generated into {path} (readable by you only; keep it private).")
