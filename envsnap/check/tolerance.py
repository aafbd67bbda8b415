"""Tolerances of ``envsnap check`` and the tolerant compare of one stage intermediate with its baseline.

The ``[check]`` table of the pipeline's config file (``[tool.envsnap.check]`` in pyproject.toml)::

    [check]
    rtol = 1e-9                      # every stage, every numeric column (--rtol/--atol override these two)
    atol = 0.0
    ignore_added_columns = false     # a column the current run adds is not a regression
    ignore_columns = ["run_id"]      # never compared, in any stage

    [check.tolerances.features]      # one stage: its keys win over [check]'s
    rtol = 1e-6
    ignore_columns = ["debug_score"] # added to [check]'s list
    ignore_added_columns = true
    columns = { score = { rtol = 1e-3 }, age = { atol = 0.5 } }

Cell rule (numpy.isclose's, as in ``envsnap diff``): ``|a - b| <= atol + rtol * |b|``. A stage named in
``[check.tolerances]`` that the pipeline does not have is an error (a typo would silently loosen nothing).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envsnap.diff.model import ColumnDiff, StatsShift, TableDiff
from envsnap.errors import EnvsnapError

__all__ = [
    "CheckConfig",
    "CheckConfigError",
    "Tolerance",
    "check_config_from_dict",
    "compare_intermediate",
    "load_check_config",
]

_TABLE_KEYS = frozenset({"rtol", "atol", "ignore_columns", "ignore_added_columns", "columns"})
_CHECK_KEYS = _TABLE_KEYS - {"columns"} | {"tolerances"}
_COLUMN_KEYS = frozenset({"rtol", "atol"})


class CheckConfigError(EnvsnapError, ValueError):
    """The ``[check]`` table is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Tolerance:
    """How one stage's intermediate is compared: cell tolerances, per-column overrides, ignored columns."""

    rtol: float = 0.0
    atol: float = 0.0
    ignore_columns: tuple[str, ...] = ()
    ignore_added_columns: bool = False
    #: column -> (rtol, atol), for the columns that do not use the stage's tolerance.
    columns: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def for_column(self, column: str) -> tuple[float, float]:
        """(rtol, atol) of ``column``."""
        return self.columns.get(column, (self.rtol, self.atol))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``envsnap check --json``)."""
        return {
            "rtol": self.rtol,
            "atol": self.atol,
            "ignore_columns": list(self.ignore_columns),
            "ignore_added_columns": self.ignore_added_columns,
            "columns": {c: {"rtol": r, "atol": a} for c, (r, a) in sorted(self.columns.items())},
        }


@dataclass(frozen=True)
class CheckConfig:
    """The parsed ``[check]`` table; :meth:`tolerance` resolves one stage's settings."""

    rtol: float = 0.0
    atol: float = 0.0
    ignore_columns: tuple[str, ...] = ()
    ignore_added_columns: bool = False
    #: stage -> its raw table (validated), resolved against the defaults in :meth:`tolerance`.
    stages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def with_overrides(
        self, *, rtol: float | None = None, atol: float | None = None, ignore_added_columns: bool | None = None
    ) -> CheckConfig:
        """The command line's ``--rtol``/``--atol``/``--ignore-added-columns`` replace the ``[check]`` defaults."""
        changes: dict[str, Any] = {}
        if rtol is not None:
            changes["rtol"] = rtol
        if atol is not None:
            changes["atol"] = atol
        if ignore_added_columns is not None:
            changes["ignore_added_columns"] = ignore_added_columns
        return dataclasses.replace(self, **changes)

    def tolerance(self, stage: str) -> Tolerance:
        """Stage settings over the defaults; column settings over the stage's."""
        raw = self.stages.get(stage, {})
        rtol = float(raw.get("rtol", self.rtol))
        atol = float(raw.get("atol", self.atol))
        columns = {
            name: (float(col.get("rtol", rtol)), float(col.get("atol", atol)))
            for name, col in (raw.get("columns") or {}).items()
        }
        ignored = tuple(dict.fromkeys([*self.ignore_columns, *raw.get("ignore_columns", ())]))
        return Tolerance(
            rtol=rtol,
            atol=atol,
            ignore_columns=ignored,
            ignore_added_columns=bool(raw.get("ignore_added_columns", self.ignore_added_columns)),
            columns=columns,
        )

    def check_stages(self, names: Iterable[str]) -> None:
        """Raise when ``[check.tolerances]`` names a stage the pipeline does not have."""
        known = list(names)
        for stage in self.stages:
            if stage not in known:
                raise CheckConfigError(
                    f"{self.source}: check.tolerances.{stage}: the pipeline has no stage {stage!r} "
                    f"(its stages: {', '.join(known)})"
                )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CheckConfigError(f"{where}: must be a number >= 0, not {value!r}")
    return float(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CheckConfigError(f"{where}: must be a list of column names, not {value!r}")
    return tuple(value)


def _table(raw: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CheckConfigError(f"{where}: must be a table, not {type(raw).__name__}")
    extra = sorted(set(raw) - allowed)
    if extra:
        raise CheckConfigError(f"{where}.{extra[0]}: unknown key; allowed: {', '.join(sorted(allowed))}")
    out = dict(raw)
    for key in ("rtol", "atol"):
        if key in raw:
            out[key] = _number(raw[key], f"{where}.{key}")
    if "ignore_columns" in raw:
        out["ignore_columns"] = _names(raw["ignore_columns"], f"{where}.ignore_columns")
    if "ignore_added_columns" in raw and not isinstance(raw["ignore_added_columns"], bool):
        raise CheckConfigError(f"{where}.ignore_added_columns: must be true or false")
    return out


def check_config_from_dict(raw: Any, *, source: str, key: str = "check") -> CheckConfig:
    """Validate the ``[check]`` table ``raw`` (None: defaults) read from ``source``."""
    if raw is None:
        return CheckConfig(source=source)
    where = f"{source}: {key}"
    table = _table(raw, _CHECK_KEYS, where)
    stages: dict[str, Mapping[str, Any]] = {}
    tolerances = table.get("tolerances", {})
    if not isinstance(tolerances, dict):
        raise CheckConfigError(f"{where}.tolerances: must be a table of stage tables")
    for stage, stage_raw in tolerances.items():
        swhere = f"{where}.tolerances.{stage}"
        parsed = _table(stage_raw, _TABLE_KEYS, swhere)
        columns = parsed.get("columns", {})
        if not isinstance(columns, dict):
            raise CheckConfigError(f"{swhere}.columns: must be a table of column = {{rtol = .., atol = ..}}")
        parsed["columns"] = {c: _table(v, _COLUMN_KEYS, f"{swhere}.columns.{c}") for c, v in columns.items()}
        stages[stage] = parsed
    return CheckConfig(
        rtol=table.get("rtol", 0.0),
        atol=table.get("atol", 0.0),
        ignore_columns=table.get("ignore_columns", ()),
        ignore_added_columns=table.get("ignore_added_columns", False),
        stages=stages,
        source=source,
    )


def load_check_config(path: str | None) -> CheckConfig:
    """The ``[check]`` table of an envsnap.toml (``[tool.envsnap.check]`` of a pyproject.toml); defaults if none."""
    if path is None:
        return CheckConfig()
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CheckConfigError(f"{path}: cannot read the [check] table: {exc}") from exc
    if path.endswith("pyproject.toml"):
        tool = data.get("tool", {})
        envsnap = tool.get("envsnap", {}) if isinstance(tool, dict) else {}
        return check_config_from_dict(
            envsnap.get("check") if isinstance(envsnap, dict) else None, source=path, key="tool.envsnap.check"
        )
    return check_config_from_dict(data.get("check"), source=path)


# --- the tolerant compare ---------------------------------------------------------------------------------


def _read(source: bytes | Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, (bytes, bytearray)):
        return pq.read_table(pa.BufferReader(source))
    if isinstance(source, pa.Table):
        return source
    from envsnap._target.runner.tables import to_arrow

    return to_arrow(source)


def _parquet(table: Any) -> io.BytesIO:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    sink.seek(0)
    return sink


def _merge_rows(parts: Sequence[Sequence[dict[str, Any]]], max_rows: int) -> tuple[dict[str, Any], ...]:
    merged: dict[Any, dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            held = merged.setdefault(row["position"], {"position": row["position"], "a": {}, "b": {}, "differing": []})
            held["a"].update(row.get("a") or {})
            held["b"].update(row.get("b") or {})
            held["differing"] += [c for c in row.get("differing") or () if c not in held["differing"]]
    return tuple(merged[p] for p in sorted(merged)[:max_rows])


def compare_intermediate(
    baseline: bytes | Any, current: bytes | Any, *, name: str, tolerance: Tolerance, max_rows: int = 10
) -> TableDiff:
    """Compare a stage output with its baseline under ``tolerance`` (rows matched by position).

    ``baseline``/``current`` are parquet bytes, pyarrow Tables or pandas DataFrames. Ignored columns are
    dropped from both sides first (and, with ``ignore_added_columns``, the columns only ``current`` has);
    then each group of columns sharing a tolerance is compared by :func:`envsnap.diff.tables.diff_parquet`.
    Equal parquet bytes are ``identical`` without decoding.
    """
    from envsnap.diff.tables import diff_parquet, schema_changes

    plain = not tolerance.ignore_columns and not tolerance.ignore_added_columns
    if plain and isinstance(baseline, bytes) and isinstance(current, bytes) and baseline == current:
        rows = _read(baseline).num_rows
        return TableDiff(name=name, status="identical", rows=(rows, rows), note="same bytes as the baseline")
    a, b = _read(baseline), _read(current)
    notes: list[str] = []
    dropped = [c for c in tolerance.ignore_columns if c in a.column_names or c in b.column_names]
    if tolerance.ignore_added_columns:
        dropped += [c for c in b.column_names if c not in a.column_names and c not in dropped]
    if dropped:
        a = a.drop_columns([c for c in dropped if c in a.column_names])
        b = b.drop_columns([c for c in dropped if c in b.column_names])
        notes.append(f"ignored column{'s' if len(dropped) > 1 else ''}: {', '.join(dropped)}")
    changes = schema_changes(a.schema, b.schema)
    common = [c for c in a.column_names if c in b.column_names]
    groups: dict[tuple[float, float], list[str]] = {}
    for column in common:
        groups.setdefault(tolerance.for_column(column), []).append(column)
    by_column: dict[str, ColumnDiff] = {}
    stats: dict[str, StatsShift] = {}
    samples: list[Sequence[dict[str, Any]]] = []
    for (rtol, atol), columns in groups.items():
        part = diff_parquet(
            _parquet(a.select(columns)),
            _parquet(b.select(columns)),
            name=name,
            rtol=rtol,
            atol=atol,
            max_rows=max_rows,
        )
        by_column.update({c.column: c for c in part.columns})
        stats.update({s.column: s for s in part.stats})
        samples.append(part.sample_rows)
        for note in (part.note or "").split("; "):
            if note and not note.startswith("row counts differ") and note not in notes:
                notes.append(note)
    column_diffs = tuple(by_column[c] for c in common if c in by_column)
    if a.num_rows != b.num_rows:
        notes.insert(0, f"row counts differ: {a.num_rows} vs {b.num_rows}")
    if changes or a.num_rows != b.num_rows or any(c.status in ("different", "incomparable") for c in column_diffs):
        status = "different"
    elif any(c.status == "within_tolerance" for c in column_diffs):
        status = "within_tolerance"
    else:
        status = "equal"
    return TableDiff(
        name=name,
        status=status,
        rows=(a.num_rows, b.num_rows),
        schema=tuple(changes),
        columns=column_diffs,
        stats=tuple(stats[c] for c in common if c in stats),
        sample_rows=_merge_rows(samples, max_rows),
        note="; ".join(notes) or None,
    )
