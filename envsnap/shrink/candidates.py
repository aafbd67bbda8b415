"""Candidate batches: copies of the snapshot with fewer input rows, replayed and compared.

A candidate keeps every member of the snapshot but its intermediates (a replay reproduces them) and its
inputs cut to the chosen rows; replayed in GOOD's runtime it takes GOOD's ``env/`` members instead (the
git members stay the snapshot's: the code under test is the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsnap.bisect.ddmin import Progress
from envsnap.shrink.report import ShrinkError

if TYPE_CHECKING:
    import pyarrow as pa

    from envsnap.snapshot.model import Snapshot

__all__ = ["Row", "Shrinker"]

#: One input row: (input name, position in the recorded batch).
Row = tuple[str, int]
_GIT_MEMBERS = ("env/git.json", "env/git.patch")


class Shrinker:
    """The snapshot being shrunk (its inputs as Arrow tables, its recorded stages) and how to replay a candidate."""

    def __init__(self, snap: Snapshot, good: Snapshot | None, options: dict[str, Any], say: Progress) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.snap, self.good, self.options, self.say = snap, good, options, say
        if snap.kind != "pipeline":
            what = "an environment snapshot"
            if snap.kind == "command":
                what = "a command snapshot (envsnap run -- COMMAND)"
            raise ShrinkError(
                f"{snap.path}: {what} has no stages to rerun on fewer rows",
                hint="declare the job as a pipeline (docs/pipelines.md) and record it with `envsnap run`",
            )
        index = snap.read_json("data/inputs.json").get("inputs") if "data/inputs.json" in snap else None
        if not index:
            raise ShrinkError(f"{snap.path}: the snapshot has no recorded inputs to shrink")
        self.inputs: dict[str, str] = {}
        self.tables: dict[str, pa.Table] = {}
        for name, entry in sorted(index.items()):
            member = entry.get("parquet")
            if member and member in snap:
                self.inputs[name] = str(member)
                self.tables[name] = pq.read_table(pa.BufferReader(snap.read_bytes(member)))
        if not self.inputs:
            raise ShrinkError(f"{snap.path}: no input was sampled, so there are no rows to shrink")
        self.base = {m: snap.read_bytes(m) for m in snap.members() if not self._intermediate(m)}
        self.env = (
            {m: good.read_bytes(m) for m in good.members() if m.startswith("env/") and m not in _GIT_MEMBERS}
            if good is not None
            else None
        )
        self.stages = [dict(s) for s in snap.read_json("pipeline/pipeline.json").get("stages") or []]
        self.steps: list[dict[str, Any]] = []

    @staticmethod
    def _intermediate(member: str) -> bool:
        return member.startswith("pipeline/stages/") and member.endswith(".parquet")

    # candidates -------------------------------------------------------------------------------------------
    def candidate(self, rows: tuple[Row, ...], runtime: str) -> Snapshot:
        from envsnap.capture.sample import parquet_bytes
        from envsnap.snapshot.build import assemble_snapshot

        members = dict(self.base)
        for name, member in self.inputs.items():
            positions = sorted(i for n, i in rows if n == name)
            members[member] = parquet_bytes(self.tables[name].take(positions))
        if runtime == "good" and self.env is not None:
            members = {m: b for m, b in members.items() if not m.startswith("env/") or m in _GIT_MEMBERS}
            members.update(self.env)
        return assemble_snapshot(members, fingerprint=self.snap.fingerprint, label=self.snap.label)

    def replay(self, rows: tuple[Row, ...], runtime: str, until: str | None, keep: Path) -> dict[int, dict[str, Any]]:
        """Replay the candidate in ``runtime``; the runner's outcomes by stage index (outputs under ``keep``)."""
        from envsnap.replay import replay

        replay(
            self.candidate(rows, runtime),
            until=until,
            fidelity=False,
            keep=str(keep),
            progress=lambda kind, message: self.say("replay", message) if kind == "step" else None,
            **self.options,
        )
        report = json.loads((keep / "out" / "report.json").read_text(encoding="utf-8"))
        return {int(o["index"]): o for o in report.get("stages") or []}

    @staticmethod
    def produced(keep: Path, stage: dict[str, Any]) -> dict[str, Path]:
        """Output label -> the parquet file a replay kept for ``stage`` (``NN-NAME.parquet``, or one per tuple
        element, ``NN-NAME.0.parquet`` ...; none for a stage that returned None or did not run)."""
        stem = f"{int(stage['index']):02d}-{stage['name']}"
        pattern = re.compile(rf"^{re.escape(stem)}(\.\d+)?\.parquet$")
        out = keep / "out"
        if not out.is_dir():
            return {}
        found = sorted(p for p in out.iterdir() if pattern.match(p.name) and p.is_file())
        return {str(stage["name"]) + p.name[len(stem) : -len(".parquet")]: p for p in found}

    def differs(self, ours: Path, theirs: Path, stage: dict[str, Any]) -> bool:
        from envsnap.diff.tables import diff_parquet

        a, b = self.produced(ours, stage), self.produced(theirs, stage)
        if set(a) != set(b):
            return True
        rtol, atol = self.options["rtol"], self.options["atol"]
        return any(diff_parquet(str(a[k]), str(b[k]), name=k, rtol=rtol, atol=atol).diverged for k in sorted(a))
