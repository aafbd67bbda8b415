"""Artifact differences: file hash and size, feature order and names, fitted parameters, sklearn versions.

Artifact records are compared by NAME (``model.joblib``). A pickled estimator's tree is flattened into
nodes addressed by their step path (``model.joblib/scaler``) so a Pipeline step that changed is named.
Fitted arrays are never copied whole into a Change unless small; their change is the max abs difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from envsnap.diff.env_common import SectionChanges, describe_list_change, get
from envsnap.diff.env_members import read_member
from envsnap.diff.model import SectionDiff
from envsnap.errors import EnvsnapError, IntegrityError, UnsafeArchiveError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["diff_artifacts", "numeric_difference"]

#: Arrays up to this many elements are shown in before/after; bigger ones only by their max abs difference.
SMALL_ARRAY = 32


def _records(snap: Snapshot, index: Any, out: SectionChanges, side: str, validate: bool) -> dict[str, Any]:
    records: dict[str, Any] = {}
    for name, entry in sorted((get(index, "artifacts") or {}).items()):
        try:
            records[name] = read_member(snap, entry["member"], validate=validate)
        except (IntegrityError, UnsafeArchiveError):
            raise  # a tampered snapshot is refused, not diffed
        except (EnvsnapError, KeyError) as exc:
            out.notes.append(f"artifact {name} unreadable in {side}: {exc}")
    return records


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, Mapping):
        for key in sorted(value):
            yield from _leaves(value[key])
    else:
        yield value


def _shape(value: Any) -> Any:
    if isinstance(value, Mapping):
        return sorted(value)
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return dims or None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def numeric_difference(before: Any, after: Any) -> str:
    """A short note on how two (nested) numeric values differ: max abs difference, or why it cannot say."""
    if _shape(before) != _shape(after):
        return f"shape {_shape(before)} → {_shape(after)}"
    worst = 0.0
    other = 0
    for x, y in zip(_leaves(before), _leaves(after), strict=False):
        if _is_number(x) and _is_number(y):
            gap = abs(float(x) - float(y))
            if not math.isnan(gap):
                worst = max(worst, gap)
        elif x != y:
            other += 1  # null (non-finite) against a number, or a non-numeric leaf
    note = f"max abs difference {worst:.6g}"
    return note + (f"; {other} non-numeric or non-finite value(s) differ" if other else "")


def _small(value: Any) -> Any:
    return value if sum(1 for _ in _leaves(value)) <= SMALL_ARRAY else None


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(node, Mapping):
        return
    yield path, node
    for group in ("steps", "transformers"):
        for child in node.get(group) or ():
            yield from _nodes(child.get("estimator"), f"{path}/{child.get('name')}")
    for key, child in sorted((node.get("entries") or {}).items()):
        yield from _nodes(child, f"{path}[{key}]")


def _diff_node(out: SectionChanges, key: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    out.field(f"{key}.class", a.get("class"), b.get("class"))
    out.field(f"{key}.n_features_in", a.get("n_features_in"), b.get("n_features_in"))
    names_a, names_b = a.get("feature_names_in"), b.get("feature_names_in")
    if names_a != names_b:
        note = describe_list_change(names_a or [], names_b or [])
        out.add(f"{key}.feature_names_in", "changed", names_a, names_b, note=note)
    out.keyed(f"{key}.param:", a.get("params"), b.get("params"))
    fitted_a: Mapping[str, Any] = a.get("fitted") or {}
    fitted_b: Mapping[str, Any] = b.get("fitted") or {}
    for name in sorted(set(fitted_a) | set(fitted_b)):
        if name not in fitted_b:
            out.add(f"{key}.{name}", "removed", _small(fitted_a[name]), None, note="fitted attribute removed")
        elif name not in fitted_a:
            out.add(f"{key}.{name}", "added", None, _small(fitted_b[name]), note="fitted attribute added")
        elif fitted_a[name] != fitted_b[name]:
            note = numeric_difference(fitted_a[name], fitted_b[name])
            out.add(f"{key}.{name}", "changed", _small(fitted_a[name]), _small(fitted_b[name]), note=note)


def _diff_pickled(out: SectionChanges, name: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    out.field(f"{name}.sklearn_version_pickled", a.get("sklearn_version_pickled"), b.get("sklearn_version_pickled"))
    out.field(f"{name}.loaded_by.sklearn", get(a, "loaded_by.sklearn"), get(b, "loaded_by.sklearn"))
    nodes_a = dict(_nodes(a.get("object"), name))
    nodes_b = dict(_nodes(b.get("object"), name))
    for path in sorted(set(nodes_a) | set(nodes_b)):
        if path not in nodes_b:
            out.add(path, "removed", nodes_a[path].get("class"), None, note="estimator removed")
        elif path not in nodes_a:
            out.add(path, "added", None, nodes_b[path].get("class"), note="estimator added")
        else:
            _diff_node(out, path, nodes_a[path], nodes_b[path])


def _diff_json_object(out: SectionChanges, name: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    order_a, order_b = a.get("feature_order"), b.get("feature_order")
    if order_a != order_b:
        note = describe_list_change(order_a or [], order_b or [])
        out.add(f"{name}.feature_order", "changed", order_a, order_b, note=note)
    values_a: Mapping[str, Any] = a.get("values") or {}
    values_b: Mapping[str, Any] = b.get("values") or {}
    for key in sorted(set(values_a) | set(values_b)):
        if key == "feature_order":
            continue  # reported above, with its moves
        if key not in values_b:
            out.add(f"{name}.{key}", "removed", _small(values_a[key]), None)
        elif key not in values_a:
            out.add(f"{name}.{key}", "added", None, _small(values_b[key]))
        elif values_a[key] != values_b[key]:
            va, vb = values_a[key], values_b[key]
            numeric = all(_is_number(x) or x is None for x in (*_leaves(va), *_leaves(vb)))
            shift = numeric_difference(va, vb) if numeric else None
            out.add(f"{name}.{key}", "changed", _small(va), _small(vb), note=shift)
    out.field(f"{name}.omitted", a.get("omitted"), b.get("omitted"), note="keys too large to record")


def diff_artifacts(a: Snapshot, b: Snapshot, index_a: Any, index_b: Any, *, validate: bool = True) -> SectionDiff:
    """Every artifact by name: added/removed, sha256/size, format, metadata (feature order, fitted params)."""
    out = SectionChanges("artifacts")
    records_a = _records(a, index_a, out, "a", validate)
    records_b = _records(b, index_b, out, "b", validate)
    for name in sorted(set(records_a) | set(records_b)):
        ra, rb = records_a.get(name), records_b.get(name)
        if rb is None or ra is None:
            present = ra if ra is not None else rb
            summary = {"sha256": get(present, "sha256"), "size": get(present, "size")}
            out.add(name, "removed" if rb is None else "added", *((summary, None) if rb is None else (None, summary)))
            continue
        if ra.get("sha256") != rb.get("sha256") or ra.get("size") != rb.get("size"):
            out.add(
                f"{name}.sha256",
                "changed",
                ra.get("sha256"),
                rb.get("sha256"),
                note=f"size {ra.get('size')} → {rb.get('size')} bytes",
            )
        out.fields(ra, rb, ("format", "metadata_error"), prefix=f"{name}.")
        ma, mb = ra.get("metadata"), rb.get("metadata")
        if isinstance(ma, Mapping) and isinstance(mb, Mapping):
            if "object" in ma and "object" in mb:
                _diff_pickled(out, name, ma, mb)
            elif ma.get("type") == "object" and mb.get("type") == "object":
                _diff_json_object(out, name, ma, mb)
            elif ma != mb:
                out.add(f"{name}.metadata", "changed", note="metadata of a different kind")
        elif ma != mb:
            out.add(f"{name}.metadata", "changed", note="metadata recorded on one side only")
    return out.result()
