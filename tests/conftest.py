"""Fixtures shared by the test tree: the really-started application stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Daphne and one Celery inference worker on the real Redis, started once per test run."""
    running = Stack(tmp=Path(tmp_path_factory.mktemp("stack"))).start()
    try:
        yield running
    finally:
        running.stop()
