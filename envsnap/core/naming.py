"""PEP 503 names: the one normalisation every layer compares distribution names by."""

from __future__ import annotations

import re

__all__ = ["normalize_name"]

_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name: runs of ``-``, ``_`` and ``.`` become one ``-``, lower case."""
    return _SEPARATORS.sub("-", name).lower()
