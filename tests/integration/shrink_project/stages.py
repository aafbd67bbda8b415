"""A pipeline for the shrink test: ``validate`` fails on exactly one poisoned row (value -999)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def prepare(table: pa.Table) -> pa.Table:
    return table.append_column("double", pc.multiply(table["value"], 2))


def validate(table: pa.Table) -> pa.Table:
    poisoned = pc.equal(table["value"], -999)
    if pc.any(poisoned).as_py():
        bad = table.filter(poisoned)["id"].to_pylist()
        raise ValueError(f"poisoned row(s) {bad}")
    return table
