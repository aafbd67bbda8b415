"""The shrunk snapshot: the original with the minimal batch as its inputs and intermediates rerun from it.

Inputs get their rows, row count and column stats recomputed, and a note saying which recorded rows they
are; each stage that ran in the final replay gets its new intermediate (rows and column stats updated);
a stage the recording ran but the final replay did not loses its intermediate (``parquet: null``) rather
than keep one that no longer matches the inputs. The manifest label records rows in, rows kept, replays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsnap.pipeline.records import stage_outputs
from envsnap.replay.execute import NORMALIZED

if TYPE_CHECKING:
    from envsnap.shrink.candidates import Row, Shrinker

__all__ = ["write_shrunk"]


def _replayed_values(keep: Path) -> dict[int, dict[str, Any]]:
    """Stage index -> output label -> its value object, as the final replay recorded them (kind, shape, a
    dict's data, ...); empty when the replay listed none."""
    listing = keep / "out" / NORMALIZED
    out: dict[int, dict[str, Any]] = {}
    if not listing.is_file():
        return out
    for line in listing.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        values = {str(o["label"]): o["value"] for o in entry.get("outputs") or () if isinstance(o.get("value"), dict)}
        out[int(entry["index"])] = values
    return out


def write_shrunk(
    shrinker: Shrinker,
    rows: tuple[Row, ...],
    rows_in: int,
    replays: int,
    keep: Path,
    outcomes: dict[int, dict[str, Any]],
    destination: Path | str,
    force: bool,
) -> Path | str:
    """Write the shrunk snapshot to ``destination``; returns where it went."""
    import pyarrow.parquet as pq

    from envsnap.capture.sample import parquet_bytes
    from envsnap.core.column_stats import column_stats
    from envsnap.core.redact import scrub_data
    from envsnap.snapshot import canonical
    from envsnap.snapshot.build import assemble_snapshot
    from envsnap.snapshot.manifest import ProbeStatus

    snap = shrinker.snap
    members = {m: snap.read_bytes(m) for m in snap.members()}

    def put_json(member: str, data: Any) -> None:
        members[member] = canonical.dumps(scrub_data(data))

    index = snap.read_json("data/inputs.json")
    new_index = {"inputs": {k: dict(v) for k, v in index["inputs"].items()}}
    for name, member in shrinker.inputs.items():
        positions = sorted(i for n, i in rows if n == name)
        table = shrinker.tables[name].take(positions)
        members[member] = parquet_bytes(table)
        new_index["inputs"][name]["rows"] = len(positions)
        record_member = new_index["inputs"][name].get("record")
        if record_member and record_member in snap:
            record = dict(snap.read_json(record_member))
            shown = ", ".join(map(str, positions[:50])) + (" …" if len(positions) > 50 else "")
            record["note"] = f"shrunk by envsnap shrink: {len(positions)} of {record['rows']} recorded rows ({shown})"
            record["rows"] = len(positions)
            record["columns"] = column_stats(table)
            put_json(record_member, record)
    put_json("data/inputs.json", new_index)

    replayed = _replayed_values(keep)
    for stage in shrinker.stages:
        record_member = str(stage.get("record") or "")
        if record_member not in snap:
            continue
        record = dict(snap.read_json(record_member))
        outputs = [(label, str(m)) for label, m in stage_outputs(record) if m]
        if not outputs:
            continue
        produced = shrinker.produced(keep, stage)
        outcome = outcomes.get(int(stage["index"])) or {}
        ok = outcome.get("status") == "ok" and all(label in produced for label, _ in outputs)
        value = record.get("value") if isinstance(record.get("value"), dict) else None
        elements = {str(e.get("label")): e for e in (value or {}).get("elements") or () if isinstance(e, dict)}
        new_values = replayed.get(int(stage["index"]), {})
        for label, member in outputs:
            # The one output's facts sit on the record itself; a tuple element's on its entry.
            target = elements.get(label, record) if label in elements else record
            if ok:
                table = pq.read_table(str(produced[label]))
                members[member] = parquet_bytes(table)
                target.update(rows=table.num_rows, columns=column_stats(table))
                if label in new_values:
                    if target is record:
                        record["value"] = new_values[label]
                    else:
                        target["value"] = new_values[label]
            else:
                members.pop(member, None)
                target.update(parquet=None, rows=None, columns=None)
        put_json(record_member, record)

    probes = {
        name: ProbeStatus(status.status, status.error, tuple(m for m in status.members if m in members))
        for name, status in snap.manifest.probes.items()
    }
    label = f"{snap.label + ' ' if snap.label else ''}shrunk: {rows_in} rows in, {len(rows)} kept, {replays} replays"
    shrunk = assemble_snapshot(members, fingerprint=snap.fingerprint, label=label, probes=probes)
    return shrunk.write(destination, force=force)
