"""Canonical JSON: the one way every JSON member is serialised.

Sorted keys, two-space indent, UTF-8, no NaN, trailing newline. Two captures of the same state therefore
produce the same bytes, and diffs of members read well in a terminal.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(data: Any) -> bytes:
    """Serialise ``data`` canonically to UTF-8 bytes."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def compact(data: Any) -> bytes:
    """Serialise ``data`` canonically with no whitespace, for hashing."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
