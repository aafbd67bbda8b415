"""Canonical JSON: the one way every JSON member is serialised.

Sorted keys, no insignificant whitespace, UTF-8, no NaN, a trailing newline. Two captures of the same
state therefore produce the same bytes. Members are compact because ``json`` falls back to its pure-Python
encoder as soon as ``indent`` is set, which costs ~10x on a 300-package SBOM; ``envsnap show --section``
pretty-prints for people.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["compact", "dumps"]


def dumps(data: Any) -> bytes:
    """Serialise ``data`` canonically to UTF-8 bytes (a member's on-disk form)."""
    return compact(data) + b"\n"


def compact(data: Any) -> bytes:
    """Serialise ``data`` canonically with no whitespace, for hashing."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
