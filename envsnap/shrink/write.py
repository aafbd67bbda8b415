"""The shrunk snapshot: the original with the minimal batch as its inputs and intermediates rerun from it.

Inputs get their rows, row count and column stats recomputed, and a note saying which recorded rows they
are; each stage that ran in the final replay gets its new intermediate (rows and column stats updated);
a stage the recording ran but the final replay did not loses its intermediate (``parquet: null``) rather
than keep one that no longer matches the inputs. The manifest label records rows in, rows kept, replays.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.shrink.candidates import Row, Shrinker

__all__ = ["write_shrunk"]


def write_shrunk(
    shrinker: Shrinker,
    rows: tuple[Row, ...],
    rows_in: int,
    replays: int,
    keep: Path,
    outcomes: dict[int, dict[str, Any]],
    destination: Path,
    force: bool,
) -> Path:
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

    for stage in shrinker.stages:
        record_member = str(stage.get("record") or "")
        if record_member not in snap:
            continue
        record = dict(snap.read_json(record_member))
        parquet = record.get("parquet")
        if not parquet:
            continue
        produced = shrinker.produced(keep, stage)
        outcome = outcomes.get(int(stage["index"])) or {}
        if produced is not None and outcome.get("status") == "ok":
            table = pq.read_table(str(produced))
            members[str(parquet)] = parquet_bytes(table)
            record["rows"] = table.num_rows
            record["columns"] = column_stats(table)
        else:
            members.pop(str(parquet), None)
            record.update(parquet=None, rows=None, columns=None)
        put_json(record_member, record)

    probes = {
        name: ProbeStatus(status.status, status.error, tuple(m for m in status.members if m in members))
        for name, status in snap.manifest.probes.items()
    }
    label = f"{snap.label + ' ' if snap.label else ''}shrunk: {rows_in} rows in, {len(rows)} kept, {replays} replays"
    shrunk = assemble_snapshot(members, fingerprint=snap.fingerprint, label=label, probes=probes)
    return shrunk.write(destination, force=force)
