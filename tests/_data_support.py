"""Shared helpers for tests/test_data_*.py: where the real dataset files are (if anywhere)."""

import os
from pathlib import Path

import pytest


def real_data_dir() -> Path | None:
    env = os.environ.get("VSML_TEST_DATA_DIR")
    path = Path(env) if env else Path(__file__).parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def need_real(*relpaths: str) -> Path:
    """The real data directory, or skip the test when it (or one of ``relpaths``) is absent."""
    root = real_data_dir()
    if root is None:
        pytest.skip("real dataset files not found (set VSML_TEST_DATA_DIR)")
    for rel in relpaths:
        if not (root / rel).is_file():
            pytest.skip(f"{rel} not found in {root}")
    return root
