"""The test tree itself: pytest imports test modules by basename (no packages), so two test files of one
name in different folders stop the whole suite at collection time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py") if "__pycache__" not in path.parts)
    assert [name for name, count in names.items() if count > 1] == []
