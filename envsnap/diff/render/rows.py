"""How a differing row reads in every view: the key columns, then the columns that differ, then the rest.

A row of a wide table used to be cut at a fixed width, in column-name order, so the column that differed
was often past the cut. Here the key columns (``--key``) and the differing columns (``"differing"`` of the
sample row, see :mod:`envsnap.diff.tables`; for rows without it, the columns whose values differ) always
show, each value capped at :data:`VALUE_LIMIT` characters; the other columns follow while the line stays
within the view's limit, and how many were left out is said (``…+7``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["VALUE_LIMIT", "differing_columns", "row_columns", "row_text"]

#: The longest a single cell is shown, even a key or a differing one (a cell can hold a whole document).
VALUE_LIMIT = 120


def _side(row: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    cells = row.get(side)
    return cells if isinstance(cells, Mapping) else {}


def differing_columns(row: Mapping[str, Any]) -> list[str]:
    """The columns that differ in a sample row: as the differ recorded them, else by comparing the values."""
    declared = row.get("differing")
    if isinstance(declared, list):
        return [str(c) for c in declared]
    a, b = _side(row, "a"), _side(row, "b")
    if not a or not b:
        return []
    return [c for c in a if c in b and a[c] != b[c]]


def row_columns(row: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(columns always shown: key columns, then differing ones; the other columns, in the table's order)."""
    key = row.get("key")
    keys = [str(k) for k in key] if isinstance(key, Mapping) else []
    first = list(dict.fromkeys([*keys, *differing_columns(row)]))
    rest = [c for c in dict.fromkeys([*_side(row, "a"), *_side(row, "b")]) if c not in first]
    return first, rest


def _cell(name: str, value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    if len(text) > VALUE_LIMIT:
        text = text[: VALUE_LIMIT - 1] + "…"
    return f"{json.dumps(name, ensure_ascii=False)}: {text}"


def row_text(row: Mapping[str, Any], side: str, *, limit: int = 120) -> str:
    """One side (``"a"`` or ``"b"``) of a sample row as ``{"id": 3, "score": 0.51, "name": "x", …+2}``:
    key and differing columns first and never cut; the rest while the text stays within ``limit``."""
    cells = row.get(side)
    if not isinstance(cells, Mapping):
        return "-"
    first, rest = row_columns(row)
    parts = [_cell(c, cells[c]) for c in first if c in cells]
    shown = [c for c in rest if c in cells]
    length = sum(len(p) + 2 for p in parts)
    left = 0
    for index, column in enumerate(shown):
        part = _cell(column, cells[column])
        tail = 0 if index == len(shown) - 1 else 4  # room for ", …+N" when more may follow
        if parts and length + len(part) + 2 + tail > limit:
            left = len(shown) - index
            break
        parts.append(part)
        length += len(part) + 2
    more = f", …+{left}" if left else ""
    return "{" + ", ".join(parts) + more + "}"
