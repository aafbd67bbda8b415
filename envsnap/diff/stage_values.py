"""What differs inside one stage beyond its output table: params, fitted state, the keys of a dict.

Pure functions over the stage records (format minor 4, docs/format.md): ``params`` (the keyword arguments
from the stage's definition), ``fitted`` (the fitted state of the scikit-learn step a stage applied) and
``value`` (what the stage returned: its kind, a dict's ``data``, an estimator's ``description``). Older
records have none of them and yield no change. Values are summarised, never copied whole when big: a
fitted array reads ``first at [1]: 2.5 → 2.75; max abs diff 0.25``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from envsnap.diff.model import ColumnDiff, StageChange, TableDiff

__all__ = [
    "TABLE_KINDS",
    "fitted_changes",
    "flatten",
    "key_changes",
    "kind_text",
    "param_changes",
    "recorded_outputs",
    "tolerate_arrays",
    "value_kind",
]

#: Kinds whose recorded form is the table itself (``parquet``: what a ``run`` stage wrote): a stage that
#: moved from one to another (pandas to polars) still has comparable outputs.
TABLE_KINDS = frozenset({"pandas", "arrow", "polars", "records", "parquet"})
#: Values with up to this many leaves are kept whole in before/after; bigger ones only summarised.
SMALL_VALUE = 32

_ARTICLES = {
    "pandas": "a pandas DataFrame",
    "arrow": "an Arrow table",
    "polars": "a polars DataFrame",
    "records": "a list of dicts",
    "parquet": "a parquet file",
    "numpy": "a numpy array",
    "series": "a pandas Series",
    "sparse": "a sparse matrix",
    "dict": "a dict",
    "estimator": "an estimator",
    "none": "nothing",
    "tuple": "a tuple",
}


def kind_text(kind: str | None) -> str:
    """``a dict``, ``a numpy array``, ``nothing``: a value kind as a sentence says it."""
    if kind is None:
        return "an unknown value"
    return _ARTICLES.get(kind, f"a {kind} value")


def value_kind(record: Mapping[str, Any] | None) -> str | None:
    """The kind of value a stage returned: ``value.kind`` (minor 4), else ``returned`` (pandas/arrow)."""
    if not isinstance(record, Mapping):
        return None
    value = record.get("value")
    if isinstance(value, Mapping) and isinstance(value.get("kind"), str):
        return str(value["kind"])
    returned = record.get("returned")
    return str(returned) if isinstance(returned, str) else None


def recorded_outputs(record: Mapping[str, Any] | None) -> list[tuple[str, str | None, str | None, Any]]:
    """``(label, parquet member, kind, value)`` of every output of one stage record.

    One per tuple element (``NAME.0``, ``NAME.1``), none for kind ``none`` or a failed stage. The labels
    and members come from :func:`envsnap.pipeline.records.stage_outputs`, the one reading of that layout;
    a record from before minor 4 (no ``value``) has its one parquet member, of the kind it ``returned``.
    """
    if not isinstance(record, Mapping):
        return []
    from envsnap.pipeline.records import stage_outputs

    name = str(record.get("name"))
    value = record.get("value")
    if not isinstance(value, Mapping):
        value = {"kind": value_kind(record)}
    elements = {
        str(e.get("label")): e.get("value")
        for e in value.get("elements") or ()
        if isinstance(e, Mapping) and value.get("kind") == "tuple"
    }
    out: list[tuple[str, str | None, str | None, Any]] = []
    for label, member in stage_outputs(record):
        element = elements.get(label, value if label == name else None)
        kind = element.get("kind") if isinstance(element, Mapping) else None
        out.append((label, member, str(kind) if isinstance(kind, str) else None, element))
    return out


# --- params ---------------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": leaf}``; lists and scalars are leaves."""
    if not isinstance(value, Mapping) or (prefix and not value):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key in sorted(value, key=str):
        out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    return out


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _leaves(value[key])
    else:
        yield value


def _small(value: Any) -> Any:
    return value if sum(1 for _ in _leaves(value)) <= SMALL_VALUE else None


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same param; True and 1 are not (a flag is not a count).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _keyed(
    stage: str, kind: str, before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> list[StageChange]:
    out = []
    for key in [*before, *(k for k in after if k not in before)]:
        name = f"{prefix}{key}"
        if key not in after:
            out.append(StageChange(stage, kind, name, "removed", _small(before[key]), None))
        elif key not in before:
            out.append(StageChange(stage, kind, name, "added", None, _small(after[key])))
        elif not _same(before[key], after[key]):
            va, vb = before[key], after[key]
            note = summary(va, vb) if isinstance(va, list) or isinstance(vb, list) else None
            out.append(StageChange(stage, kind, name, "changed", _small(va), _small(vb), note))
    return out


def param_changes(stage: str, before: Any, after: Any) -> tuple[StageChange, ...]:
    """The params of ``stage`` that differ (nested params by dotted name); none when neither side has any."""
    if not isinstance(before, Mapping) and not isinstance(after, Mapping):
        return ()
    return tuple(_keyed(stage, "param", flatten(before or {}), flatten(after or {})))


# --- fitted state ---------------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _shape(value: Any) -> list[int]:
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return dims


def _first_difference(a: Any, b: Any, at: tuple[int, ...] = ()) -> tuple[tuple[int, ...], Any, Any] | None:
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_difference(x, y, (*at, i))
            if found is not None:
                return found
        if len(a) != len(b):
            i = min(len(a), len(b))
            return (*at, i), a[i] if i < len(a) else None, b[i] if i < len(b) else None
        return None
    return None if _same(a, b) else (at, a, b)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def summary(before: Any, after: Any, features: tuple[int, list[Any]] | None = None) -> str:
    """How two values (arrays as nested lists) differ, shortly: shape, first difference, max abs diff.

    ``features``: (axis, names) when that axis of the arrays runs over named features: the first
    difference is then named by its feature (``first at [age]``)."""
    parts = []
    shape_a, shape_b = _shape(before), _shape(after)
    if shape_a != shape_b:
        parts.append(f"shape {shape_a or 'scalar'} → {shape_b or 'scalar'}")
    first = _first_difference(before, after)
    if first is not None:
        where, x, y = first
        names = list(where)
        if features is not None and len(where) > features[0] and where[features[0]] < len(features[1]):
            names[features[0]] = features[1][where[features[0]]]
        index = "".join(f"[{i}]" for i in names)
        before_text, after_text = _short(x), _short(y)
        if before_text == after_text and _is_number(x) and _is_number(y):
            before_text, after_text = repr(x), repr(y)  # apart only beyond 6 digits: show them all
        shown = f"{before_text} → {after_text}"
        parts.append(f"first at {index}: {shown}" if index else shown)
    if shape_a == shape_b and shape_a:
        gaps = [
            abs(float(x) - float(y))
            for x, y in zip(_leaves(before), _leaves(after), strict=False)
            if _is_number(x) and _is_number(y)
        ]
        gaps = [g for g in gaps if not math.isnan(g)]
        if gaps:
            parts.append(f"max abs diff {max(gaps):.6g}")
    return "; ".join(parts) or "changed"


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every estimator of a description, addressed by its step path (``""`` for the root, ``scaler/``)."""
    if not isinstance(node, Mapping):
        return
    yield path, node
    for group in ("steps", "transformers"):
        for child in node.get(group) or ():
            if isinstance(child, Mapping):
                yield from _nodes(child.get("estimator"), f"{path}{child.get('name')}/")


def _order_note(before: list[Any], after: list[Any]) -> str:
    if sorted(map(str, before)) == sorted(map(str, after)):
        moved = [str(n) for i, n in enumerate(after) if i >= len(before) or before[i] != n]
        return f"feature order changed: {', '.join(moved[:6])}{' …' if len(moved) > 6 else ''} at other positions"
    added = [str(n) for n in after if n not in before]
    removed = [str(n) for n in before if n not in after]
    parts = [f"added: {', '.join(added)}" if added else "", f"removed: {', '.join(removed)}" if removed else ""]
    return "features " + "; ".join(p for p in parts if p) if added or removed else "features changed"


def _node_changes(
    stage: str, path: str, a: Mapping[str, Any], b: Mapping[str, Any], tolerance: tuple[float, float]
) -> list[StageChange]:
    out = []
    if a.get("class") != b.get("class"):
        out.append(StageChange(stage, "fitted", f"{path}class", "changed", a.get("class"), b.get("class")))
    names_a, names_b = a.get("feature_names_in"), b.get("feature_names_in")
    if names_a != names_b:
        note = _order_note(list(names_a or []), list(names_b or []))
        out.append(
            StageChange(stage, "fitted", f"{path}feature_names_in", "changed", _small(names_a), _small(names_b), note)
        )
    elif a.get("n_features_in") != b.get("n_features_in"):
        out.append(
            StageChange(
                stage, "fitted", f"{path}n_features_in", "changed", a.get("n_features_in"), b.get("n_features_in")
            )
        )
    params_a, params_b = a.get("params"), b.get("params")
    out.extend(
        _keyed(
            stage,
            "fitted",
            params_a if isinstance(params_a, Mapping) else {},
            params_b if isinstance(params_b, Mapping) else {},
            f"{path}params.",
        )
    )
    fitted_a, fitted_b = a.get("fitted"), b.get("fitted")
    fa: Mapping[str, Any] = fitted_a if isinstance(fitted_a, Mapping) else {}
    fb: Mapping[str, Any] = fitted_b if isinstance(fitted_b, Mapping) else {}
    names: list[Any] = list(names_a) if isinstance(names_a, list) else []
    others: list[Any] = list(names_b) if isinstance(names_b, list) else []
    reordered = bool(names) and bool(others) and names != others
    same_features = reordered and len(set(map(str, names))) == len(names) and sorted(names) == sorted(others)
    for name in [*fa, *(n for n in fb if n not in fa)]:
        if name not in fb:
            out.append(StageChange(stage, "fitted", f"{path}{name}", "removed", _small(fa[name]), None))
        elif name not in fa:
            out.append(StageChange(stage, "fitted", f"{path}{name}", "added", None, _small(fb[name])))
        elif fa[name] != fb[name]:
            va, vb, axis = fa[name], fb[name], _feature_axis(fa[name], len(names))
            if same_features and axis is not None:
                # The same features in another order: compare each feature's value with its own.
                vb = _reorder(vb, axis, [others.index(n) for n in names])
                if va == vb:
                    continue
            elif reordered:
                axis = None  # other features: positions do not name the same thing on both sides
            found = _numbers_within(va, vb, *tolerance)
            if found is not None and found[0]:
                continue  # numbers within --rtol/--atol: the same fit, up to floating-point noise
            features = (axis, names) if axis is not None and names else None
            note = summary(va, vb, features)
            out.append(
                StageChange(stage, "fitted", f"{path}{name}", "changed", _small(fa[name]), _small(fb[name]), note)
            )
    return out


def _feature_axis(value: Any, count: int) -> int | None:
    """The axis of a fitted attribute that runs over the input features: 0 for ``mean_``, ``scale_``,
    ``statistics_``, ``categories_`` (one entry per feature), 1 for ``coef_`` (a row per class)."""
    if count < 1 or not isinstance(value, list):
        return None
    if len(value) == count:
        return 0
    if value and all(isinstance(row, list) and len(row) == count for row in value):
        return 1
    return None


def _reorder(value: list[Any], axis: int, positions: list[int]) -> list[Any]:
    if axis == 0:
        return [value[p] for p in positions]
    return [[row[p] for p in positions] for row in value]


def fitted_changes(
    stage: str, before: Any, after: Any, *, rtol: float = 0.0, atol: float = 0.0
) -> tuple[StageChange, ...]:
    """What differs between two fitted-state descriptions (``envsnap._target.artifact_load.describe``).

    Class, feature names (their order), estimator params (``params.C``) and each fitted attribute
    (``mean_``, ``scale_``, ``categories_``, ``coef_``), in every nested step (``scaler/mean_``); numeric
    arrays within ``rtol``/``atol`` of each other are the same. A description on one side only is one
    change named ``fitted``.
    """
    if not isinstance(before, Mapping) and not isinstance(after, Mapping):
        return ()
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        if isinstance(after, Mapping):
            return (StageChange(stage, "fitted", "fitted", "added", None, after.get("class")),)
        return (StageChange(stage, "fitted", "fitted", "removed", before.get("class"), None),)
    nodes_a, nodes_b = dict(_nodes(before)), dict(_nodes(after))
    out: list[StageChange] = []
    for path in [*nodes_a, *(p for p in nodes_b if p not in nodes_a)]:
        if path not in nodes_b:
            out.append(StageChange(stage, "fitted", path.rstrip("/"), "removed", nodes_a[path].get("class"), None))
        elif path not in nodes_a:
            out.append(StageChange(stage, "fitted", path.rstrip("/"), "added", None, nodes_b[path].get("class")))
        else:
            out.extend(_node_changes(stage, path, nodes_a[path], nodes_b[path], (rtol, atol)))
    return tuple(out)


# --- dict keys ------------------------------------------------------------------------------------------


def _cell(table: TableDiff, column: str, side: str) -> Any:
    for row in table.sample_rows:
        values = row.get(side)
        if isinstance(values, Mapping) and column in values:
            return values[column]
    return None


def key_changes(
    stage: str, table: TableDiff, before: Any, after: Any, element: str | None = None
) -> tuple[StageChange, ...]:
    """The keys of a returned dict that differ: the columns of its one-row table that the table diff found
    different (beyond ``--rtol``/``--atol``) or added/removed/retyped, with the values from the records'
    ``value.data`` (from the diff's sample row when the data does not hold the key)."""
    if table.status not in ("different", "within_tolerance"):
        return ()
    flat_a = flatten(before) if isinstance(before, Mapping) else {}
    flat_b = flatten(after) if isinstance(after, Mapping) else {}

    def side(flat: dict[str, Any], key: str, name: str) -> Any:
        return _small(flat[key]) if key in flat else _cell(table, key, name)

    out: list[StageChange] = []
    for change in table.schema:
        if change.kind in ("added", "removed"):
            value = side(flat_b, change.column, "b") if change.kind == "added" else side(flat_a, change.column, "a")
            va, vb = (None, value) if change.kind == "added" else (value, None)
            out.append(StageChange(stage, "key", change.column, change.kind, va, vb, None, element))
        elif change.kind == "retyped":
            va, vb = side(flat_a, change.column, "a"), side(flat_b, change.column, "b")
            retype = f"type {change.before} → {change.after}"
            out.append(StageChange(stage, "key", change.column, "changed", va, vb, retype, element))
    retyped = {c.column for c in table.schema if c.kind == "retyped"}
    for column in table.columns:
        if column.status in ("different", "incomparable") and column.column not in retyped:
            va, vb = side(flat_a, column.column, "a"), side(flat_b, column.column, "b")
            raw_a, raw_b = flat_a.get(column.column, va), flat_b.get(column.column, vb)
            note = summary(raw_a, raw_b) if isinstance(raw_a, list) or isinstance(raw_b, list) else None
            out.append(StageChange(stage, "key", column.column, "changed", va, vb, note, element))
    return tuple(out)


def _numbers_within(before: Any, after: Any, rtol: float, atol: float) -> tuple[bool, float, float] | None:
    """(within tolerance, max abs diff, max rel diff) of two equally shaped numeric arrays; None otherwise."""
    if not isinstance(before, list) or not isinstance(after, list) or _shape(before) != _shape(after):
        return None
    pairs = list(zip(_leaves(before), _leaves(after), strict=False))
    if not pairs or not all(_is_number(x) and _is_number(y) for x, y in pairs):
        return None
    gaps = [(abs(float(x) - float(y)), abs(float(y))) for x, y in pairs]
    within = all(gap <= atol + rtol * size for gap, size in gaps)
    relative = [gap / size for gap, size in gaps if size]
    return within, max(gap for gap, _ in gaps), max(relative, default=0.0)


def tolerate_arrays(table: TableDiff, before: Any, after: Any, rtol: float, atol: float) -> TableDiff:
    """A dict's table with its list and array values (stored as JSON text, so compared as text) compared
    number by number under ``rtol``/``atol``, like every numeric cell."""
    if table.status != "different":
        return table
    flat_a = flatten(before) if isinstance(before, Mapping) else {}
    flat_b = flatten(after) if isinstance(after, Mapping) else {}
    columns: list[ColumnDiff] = []
    tolerated: set[str] = set()
    for column in table.columns:
        found = _numbers_within(flat_a.get(column.column), flat_b.get(column.column), rtol, atol)
        if column.status != "different" or column.null_mismatches or found is None:
            columns.append(column)
            continue
        within, max_abs, max_rel = found
        status = ("within_tolerance" if max_abs else "equal") if within else "different"
        if within:
            tolerated.add(column.column)
        columns.append(
            dataclasses.replace(
                column, status=status, differing=0 if within else 1, max_abs_diff=max_abs, max_rel_diff=max_rel
            )
        )
    if not tolerated:
        return dataclasses.replace(table, columns=tuple(columns))
    samples = []
    for row in table.sample_rows:
        differing = [c for c in row.get("differing") or () if c not in tolerated]
        if differing:
            samples.append({**row, "differing": differing})
    if (
        table.schema
        or table.rows[0] != table.rows[1]
        or any(c.status in ("different", "incomparable") for c in columns)
    ):
        status = "different"
    else:
        status = "within_tolerance" if any(c.status == "within_tolerance" for c in columns) else "equal"
    return dataclasses.replace(table, status=status, columns=tuple(columns), sample_rows=tuple(samples))
