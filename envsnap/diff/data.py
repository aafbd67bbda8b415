"""Data diff of two snapshots: sampled inputs and stage intermediates, and the first diverging stage.

Inputs (``data/inputs/NAME.parquet``) are matched by name, stages (``pipeline/pipeline.json``) by name in
b's order. Each pair of parquet members is compared with :func:`envsnap.diff.tables.diff_parquet`,
except when the manifest gives both the same sha256: then the table is ``identical`` and not a byte is
read (the fast path).

Integrity: a member is hashed against its manifest before its diff is trusted. The hash is streamed on
its own file handle in a background thread while pyarrow decodes (hashlib and pyarrow both release the
GIL), so verification costs wall time only when the CPUs are saturated; pyarrow therefore parses bytes
that are not yet verified, but nothing parsed from them leaves this module before the hash has matched.
A member that does not match makes its table ``incomparable`` (with a note), as does a parquet member
that cannot be read.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from envsnap.diff.model import DataDiff, StageChange, StageDiff, TableDiff
from envsnap.diff.stage_values import (
    TABLE_KINDS,
    fitted_changes,
    key_changes,
    kind_text,
    param_changes,
    recorded_outputs,
    tolerate_arrays,
    value_kind,
)
from envsnap.snapshot.model import Snapshot

__all__ = ["diff_data", "diff_member"]

INPUTS = "data/inputs.json"
PIPELINE = "pipeline/pipeline.json"


def _verify_both(a: Snapshot, member_a: str, b: Snapshot, member_b: str) -> None:
    a.check_member(member_a)
    b.check_member(member_b)


def diff_member(
    a: Snapshot,
    b: Snapshot,
    member_a: str,
    member_b: str,
    *,
    name: str,
    rtol: float = 0.0,
    atol: float = 0.0,
    keys: Sequence[str] = (),
    max_rows: int = 10,
    rows: tuple[int | None, int | None] = (None, None),
) -> TableDiff:
    """Compare one parquet member of ``a`` with one of ``b`` (fast path on equal manifest hashes)."""
    if a.manifest.members[member_a].sha256 == b.manifest.members[member_b].sha256:
        return TableDiff(name=name, status="identical", rows=rows, note="same sha256 on both sides")
    import pyarrow as pa  # only past the fast path: it reads nothing and imports nothing heavy
    import pyarrow.parquet as pq

    from envsnap.diff.tables import diff_parquet

    with ThreadPoolExecutor(max_workers=1) as pool:
        check: Future[None] = pool.submit(_verify_both, a, member_a, b, member_b)
        result: TableDiff | None = None
        failure: str | None = None
        try:
            with contextlib.ExitStack() as stack:
                # A directory member is opened by pyarrow itself (native reads, no GIL); a zip member is
                # read through a Python window over the archive, which is slower.
                fa: Any = a.member_path(member_a) or stack.enter_context(a.open_member(member_a))
                fb: Any = b.member_path(member_b) or stack.enter_context(b.open_member(member_b))
                usable = list(keys)
                if keys:
                    names_a = set(pq.read_schema(fa).names)
                    names_b = set(pq.read_schema(fb).names)
                    usable = [k for k in keys if k in names_a and k in names_b]
                    if len(usable) != len(keys):
                        usable = []
                    for f in (fa, fb):
                        if not isinstance(f, str):
                            f.seek(0)
                result = diff_parquet(fa, fb, name=name, rtol=rtol, atol=atol, keys=usable, max_rows=max_rows)
                if keys and not usable:
                    note = f"key column(s) {', '.join(keys)} not on both sides: rows matched by position"
                    result = _with_note(result, note)
        except (pa.ArrowException, OSError, ValueError) as exc:
            failure = f"cannot read parquet: {exc}"
        # An altered or unsafe member is a hostile snapshot, not a data difference: it propagates (exit 3,
        # like every reader). Nothing read from it has been returned.
        check.result()
    if result is None:
        return TableDiff(name=name, status="incomparable", rows=rows, note=failure)
    return result


def _with_note(table: TableDiff, note: str) -> TableDiff:
    import dataclasses

    return dataclasses.replace(table, note=f"{table.note}; {note}" if table.note else note)


def _json(snap: Snapshot, member: str) -> Any:
    return snap.read_json(member) if member in snap else None


def _has_data(snap: Snapshot) -> bool:
    return INPUTS in snap or PIPELINE in snap


def _diff_inputs(a: Snapshot, b: Snapshot, options: dict[str, Any]) -> list[TableDiff]:
    ins_a = (_json(a, INPUTS) or {}).get("inputs", {})
    ins_b = (_json(b, INPUTS) or {}).get("inputs", {})
    out: list[TableDiff] = []
    for name in [*ins_a, *(n for n in ins_b if n not in ins_a)]:
        ea, eb = ins_a.get(name), ins_b.get(name)
        rows = (ea.get("rows") if ea else None, eb.get("rows") if eb else None)
        if ea is None or eb is None:
            side = "a" if ea is not None else "b"
            out.append(TableDiff(name=name, status="incomparable", rows=rows, note=f"input only in {side}"))
        elif "parquet" not in ea or "parquet" not in eb:
            side = "a" if "parquet" not in ea else "b"
            error = (ea if side == "a" else eb).get("error")
            out.append(
                TableDiff(name=name, status="incomparable", rows=rows, note=f"input not sampled in {side}: {error}")
            )
        else:
            out.append(diff_member(a, b, ea["parquet"], eb["parquet"], name=name, rows=rows, **options))
    return out


def _imports(*records: Any) -> tuple[str, ...]:
    names = {
        dist["name"]
        for record in records
        if isinstance(record, dict)
        for entry in record.get("imports") or []
        for dist in entry.get("distributions") or []
    }
    return tuple(sorted(names))


#: Kinds recorded as one row (a column per key or fitted attribute).
ONE_ROW_KINDS = frozenset({"dict", "estimator"})
_SEVERITY = ("identical", "equal", "within_tolerance", "different", "incomparable")


def _worst(tables: Sequence[TableDiff]) -> str:
    return max((t.status for t in tables), key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else len(_SEVERITY))


def _kind_change(label: str, kinds: tuple[str | None, str | None], rows: Any) -> TableDiff | None:
    """A stage that returned another kind of value (a dict, then a numpy array): different, not read.

    Table kinds (pandas, Arrow, polars) share one recorded form, so a move between them is compared."""
    ka, kb = kinds
    if ka is None or kb is None or ka == kb or (ka in TABLE_KINDS and kb in TABLE_KINDS):
        return None
    note = f"returned {kind_text(ka)} in a, {kind_text(kb)} in b"
    return TableDiff(name=label, status="different", rows=rows, note=note)


def _fitted_columns(value: dict[str, Any]) -> dict[str, Any]:
    """The fitted attributes of a returned estimator by the column names of its one-row table."""
    description = value.get("description")
    fitted = description.get("fitted") if isinstance(description, dict) else None
    return dict(fitted) if isinstance(fitted, dict) else {}


def _compare_outputs(
    a: Snapshot, b: Snapshot, name: str, rec_a: Any, rec_b: Any, rows: Any, options: dict[str, Any]
) -> tuple[TableDiff, tuple[TableDiff, ...], tuple[StageChange, ...]]:
    """The stage's output(s) compared: (summary table, tuple elements, dict keys that differ)."""
    kinds = (value_kind(rec_a), value_kind(rec_b))
    changed = _kind_change(name, kinds, rows)
    if changed is not None:
        return changed, (), ()
    outs_a, outs_b = recorded_outputs(rec_a), recorded_outputs(rec_b)
    if not outs_a and not outs_b:
        if kinds == ("none", "none"):
            note = "returned nothing on both sides (the previous value flowed on)"
            return TableDiff(name=name, status="equal", note=note), (), ()
        return TableDiff(name=name, status="incomparable", rows=rows, note="stage output missing"), (), ()
    by_label_a = {label: (member, kind, value) for label, member, kind, value in outs_a}
    by_label_b = {label: (member, kind, value) for label, member, kind, value in outs_b}
    tables: list[TableDiff] = []
    keys: list[StageChange] = []
    tuple_stage = "tuple" in kinds
    for label in [*by_label_b, *(n for n in by_label_a if n not in by_label_b)]:
        ea, eb = by_label_a.get(label), by_label_b.get(label)
        element_rows = rows if not tuple_stage else (None, None)
        if ea is None or eb is None:
            what = "element" if tuple_stage else "output"
            note = f"{what} {label} only in {'b' if ea is None else 'a'}"
            tables.append(TableDiff(name=label, status="incomparable", rows=element_rows, note=note))
            continue
        (ma, ka, va), (mb, kb, vb) = ea, eb
        table = _kind_change(label, (ka, kb), element_rows)
        if table is None:
            if not isinstance(ma, str) or not isinstance(mb, str) or ma not in a or mb not in b:
                table = TableDiff(name=label, status="incomparable", rows=element_rows, note="stage output missing")
            else:
                table = diff_member(a, b, ma, mb, name=label, rows=element_rows, **options)
            if ka == kb and ka in ONE_ROW_KINDS and table.stats:
                # One value per column: a distribution shift of one row says nothing the cells do not.
                table = dataclasses.replace(table, stats=())
            if ka == kb == "estimator" and isinstance(va, dict) and isinstance(vb, dict):
                fitted_a, fitted_b = _fitted_columns(va), _fitted_columns(vb)
                table = tolerate_arrays(table, fitted_a, fitted_b, options["rtol"], options["atol"])
            if ka == kb == "dict" and isinstance(va, dict) and isinstance(vb, dict):
                table = tolerate_arrays(table, va.get("data"), vb.get("data"), options["rtol"], options["atol"])
                element = label if tuple_stage else None
                keys.extend(key_changes(name, table, va.get("data"), vb.get("data"), element))
        tables.append(table)
    if not tuple_stage and len(tables) == 1:
        return tables[0], (), tuple(keys)
    diverged = [t.name for t in tables if t.diverged]
    said = f"{len(diverged)} of {len(tables)} elements differ: {', '.join(diverged)}" if diverged else None
    summary = TableDiff(name=name, status=_worst(tables), note=said)
    return summary, tuple(tables), tuple(keys)


#: The scikit-learn step runner (``envsnap run --sklearn``): its ``model`` param names the model (a file
#: path, a label) and moves with where the model lies; what the model holds is compared as each step's
#: fitted state, so a new name alone is not a change.
_SKLEARN_STEP = "runner.sklearn_steps:step"


def _params(entry: Any, record: Any) -> Any:
    """A stage's params: its ``pipeline.json`` entry (the definition), else its record (minor 4)."""
    for source in (entry, record):
        if isinstance(source, dict) and "params" in source:
            params = source["params"]
            if str(source.get("call") or "").endswith(_SKLEARN_STEP) and isinstance(params, dict):
                return {k: v for k, v in params.items() if k != "model"}
            return params
    return None


def _fitted(stage: str, rec_a: Any, rec_b: Any, rtol: float, atol: float) -> tuple[StageChange, ...]:
    """The fitted state that differs: of the step a stage applied (``fitted``), or of the estimator it
    returned (``value.description``); the same attribute named once."""
    changes: dict[str, StageChange] = {}
    if not isinstance(rec_a, dict) or not isinstance(rec_b, dict):
        return ()  # a stage on one side only is told as that, not as its fitted state
    sides = [rec_a, rec_b]
    returned: list[Any] = []
    for side in sides:
        value = side.get("value")
        returned.append(
            value.get("description") if isinstance(value, dict) and value.get("kind") == "estimator" else None
        )
    failed = [side.get("status") != "ok" for side in sides]
    for before, after in ((sides[0].get("fitted"), sides[1].get("fitted")), (returned[0], returned[1])):
        if (before is None and failed[0]) or (after is None and failed[1]):
            continue  # nothing recorded where the stage failed: unknown, not removed
        for change in fitted_changes(stage, before, after, rtol=rtol, atol=atol):
            changes.setdefault(change.name, change)
    return tuple(changes.values())


def _diff_stages(a: Snapshot, b: Snapshot, options: dict[str, Any]) -> list[StageDiff]:
    pipeline_a, pipeline_b = _json(a, PIPELINE) or {}, _json(b, PIPELINE) or {}
    stages_a = {s["name"]: s for s in pipeline_a.get("stages", [])}
    stages_b = list(pipeline_b.get("stages", []))
    preloaded = tuple(
        sorted(
            {
                str(name)
                for pipeline in (pipeline_a, pipeline_b)
                for name in (pipeline.get("runner") or {}).get("preloaded_distributions") or []
            }
        )
    )
    names_b = {s["name"] for s in stages_b}
    ordered = [(s.get("index", i + 1), s["name"], stages_a.get(s["name"]), s) for i, s in enumerate(stages_b)]
    ordered += [(s.get("index", 0), n, s, None) for n, s in stages_a.items() if n not in names_b]
    out: list[StageDiff] = []
    for index, name, sa, sb in ordered:
        status = (sa.get("status") if sa else None, sb.get("status") if sb else None)
        rec_a = _json(a, sa["record"]) if sa and sa.get("record") else None
        rec_b = _json(b, sb["record"]) if sb and sb.get("record") else None
        rows = ((rec_a or {}).get("rows"), (rec_b or {}).get("rows"))
        note = None
        if sa is None or sb is None:
            note = f"stage missing in {'a' if sa is None else 'b'}"
        elif status != ("ok", "ok"):
            bad = [f"{side}: {st}" for side, st in zip("ab", status, strict=True) if st != "ok"]
            note = f"stage did not succeed ({', '.join(bad)})"
        elements: tuple[TableDiff, ...] = ()
        keys: tuple[StageChange, ...] = ()
        if note is not None:
            table = TableDiff(name=name, status="incomparable", rows=rows, note=note)
        else:
            table, elements, keys = _compare_outputs(a, b, name, rec_a, rec_b, rows, options)
        both = sa is not None and sb is not None
        out.append(
            StageDiff(
                index=index,
                name=name,
                status=status,
                table=table,
                imports=_imports(rec_a, rec_b),
                preloaded=preloaded,
                kinds=(value_kind(rec_a), value_kind(rec_b)),
                elements=elements,
                params=param_changes(name, _params(sa, rec_a), _params(sb, rec_b)) if both else (),
                fitted=_fitted(name, rec_a, rec_b, options["rtol"], options["atol"]),
                keys=keys,
            )
        )
    return out


def diff_data(
    a: Snapshot,
    b: Snapshot,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    keys: Sequence[str] = (),
    max_rows: int = 10,
) -> DataDiff:
    """Compare the sampled inputs and every stage intermediate of ``a`` (good/old) and ``b`` (bad/new).

    ``first_diverging_stage`` is the first stage, in b's order, whose intermediate differs or cannot be
    compared; ``StageDiff.imports`` lists the distributions the stage imported (both records).
    """
    has_a, has_b = _has_data(a), _has_data(b)
    if not has_a and not has_b:
        return DataDiff(note="neither snapshot holds data (inputs or pipeline stages)")
    if not has_a or not has_b:
        return DataDiff(note=f"only {'a' if has_a else 'b'} holds data (inputs or pipeline stages); not compared")
    options: dict[str, Any] = {"rtol": rtol, "atol": atol, "keys": tuple(keys), "max_rows": max_rows}
    inputs = _diff_inputs(a, b, options)
    stages = _diff_stages(a, b, options)
    first = next((s.name for s in stages if s.table.diverged), None)
    return DataDiff(inputs=tuple(inputs), stages=tuple(stages), first_diverging_stage=first)
