"""Names shown and compared by every layer: PEP 503 distribution names, human-readable sizes."""

from __future__ import annotations

import re

__all__ = ["human_size", "normalize_name"]

_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name: runs of ``-``, ``_`` and ``.`` become one ``-``, lower case."""
    return _SEPARATORS.sub("-", name).lower()


def human_size(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
