"""A realistic, hand-built diff shared by the rendering tests (golden files) and the HTML/Chromium test.

The story: a nightly pipeline `ratio` started to drift after an environment rebuild. numpy went from 1.26.4
to 2.2.6 (imported by the `ratio` stage, the first to diverge), OMP_NUM_THREADS went 1 → 8, requests got a
patch release, the git commit moved (one line of toy/ratio.py, and an untracked toy/weights.py in b's dirty
tree), a redacted token changed and the `label` stage is missing in b.
Everything is built by hand from the model dataclasses, so the renderings are deterministic.
"""

from __future__ import annotations

import json
from typing import Any

from envsnap.diff.env import ENV_SECTIONS
from envsnap.diff.model import (
    Change,
    CodeDiff,
    CodeFile,
    CodeHunk,
    ColumnDiff,
    DataDiff,
    EnvDiff,
    PackageDelta,
    SchemaChange,
    SectionDiff,
    SnapshotDiff,
    SnapshotRef,
    StageDiff,
    StatsShift,
    TableDiff,
)
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot

SECTIONS = ENV_SECTIONS  # the differ's own order, not a copy of it

NUMPY = PackageDelta("numpy", "upgraded", "1.26.4", "2.2.6", level="major")
REQUESTS = PackageDelta("requests", "upgraded", "2.32.3", "2.32.4", level="patch")
TQDM = PackageDelta("tqdm", "added", None, "4.67.1")
OMP_THREADS = Change("threads", "configured:OMP_NUM_THREADS", "changed", "1", "8")
OMP_VAR = Change("envvars", "OMP_NUM_THREADS", "changed", "1", "8")
TOKEN = Change("envvars", "HF_TOKEN", "changed", redacted=True, value_changed=True, note="redacted value changed")
COMMIT = Change("git", "commit", "changed", "a" * 40, "b" * 40)
GLIBC = Change("system", "glibc", "changed", "2.36", "2.39")


def env_diff(
    *,
    packages: tuple[PackageDelta, ...] = (NUMPY, REQUESTS, TQDM),
    changes: tuple[Change, ...] = (OMP_THREADS, OMP_VAR, TOKEN, COMMIT, GLIBC),
) -> EnvDiff:
    """An EnvDiff with every fixed section, the packages and lock sections mirroring the deltas as the env
    differ does."""
    by_section: dict[str, list[Change]] = {name: [] for name in SECTIONS}
    for delta in packages:
        kind = {"upgraded": "changed", "downgraded": "changed"}.get(delta.change, delta.change)
        by_section["packages"].append(Change("packages", delta.name, kind, delta.before, delta.after))
        # The lock moves with the pins (no hashes in this one): the lock section says so.
        note = {"added": "requirement added", "removed": "requirement removed"}.get(delta.change, "pin changed")
        by_section["lock"].append(Change("lock", delta.name, kind, delta.before, delta.after, note=note))
    for change in changes:
        by_section[change.section].append(change)
    sections = tuple(SectionDiff(name, tuple(by_section[name])) for name in SECTIONS)
    return EnvDiff(sections=sections, packages=packages, fingerprint_changed=True)


def data_diff() -> DataDiff:
    """Input equal; stage `clean` equal; `ratio` differs (two columns); `label` missing in b."""
    events = TableDiff("events", "identical", rows=(1000, 1000))
    clean = StageDiff(1, "clean", ("ok", "ok"), TableDiff("clean", "equal", rows=(998, 998)), imports=("pandas",))
    ratio_table = TableDiff(
        "ratio",
        "different",
        rows=(998, 998),
        schema=(SchemaChange("ratio", "retyped", "double", "float"),),
        columns=(
            ColumnDiff("user", "equal"),
            ColumnDiff(
                "ratio",
                "different",
                differing=412,
                null_mismatches=0,
                max_abs_diff=3.0517578125e-05,
                max_rel_diff=1.2e-07,
            ),
            ColumnDiff("score", "within_tolerance", differing=0, max_abs_diff=1e-12, max_rel_diff=1e-15),
        ),
        stats=(
            StatsShift(
                "ratio",
                "numeric",
                mean=(0.5012, 0.5013),
                std=(0.2887, 0.2889),
                quantiles={"p50": (0.5, 0.5001)},
                psi=0.0004,
                ks=0.011,
                histogram={
                    "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
                    "a": [0.25, 0.25, 0.25, 0.25],
                    "b": [0.24, 0.26, 0.25, 0.25],
                },
            ),
            StatsShift(
                "bucket",
                "categorical",
                psi=0.02,
                frequency_shift={"low": (0.5, 0.45), "high": (0.5, 0.55)},
                histogram={"labels": ["high", "low"], "a": [0.5, 0.5], "b": [0.55, 0.45]},
            ),
        ),
        sample_rows=(
            {
                "position": 3,
                "a": {"user": "u1", "ratio": 0.125},
                "b": {"user": "u1", "ratio": 0.12500003},
                "differing": ["ratio"],
            },
            {
                "position": 7,
                "a": {"user": "u4", "ratio": 0.5},
                "b": {"user": "u4", "ratio": 0.50000006},
                "differing": ["ratio"],
            },
        ),
    )
    ratio = StageDiff(2, "ratio", ("ok", "ok"), ratio_table, imports=("numpy", "pandas"))
    label = StageDiff(
        3, "label", ("ok", None), TableDiff("label", "incomparable", rows=(998, None), note="stage missing in b")
    )
    return DataDiff(inputs=(events,), stages=(clean, ratio, label), first_diverging_stage="ratio")


def code_diff() -> CodeDiff:
    """The commit's one-line change in toy/ratio.py (imported by `ratio`), a dirty patch and an untracked file."""
    hunk = CodeHunk(
        "@@ -10,5 +10,5 @@",
        10,
        10,
        (
            " def ratio(frame):",
            '     total = frame["clicks"] + frame["views"]',
            '-    out = frame["clicks"] / total',
            '+    out = (frame["clicks"] / total).astype("float32")',
            "     return frame.assign(ratio=out)",
        ),
    )
    ratio = CodeFile(
        "toy/ratio.py",
        "modified",
        stages=("ratio",),
        first_diverging=True,
        line=12,
        snippet='out = (frame["clicks"] / total).astype("float32")',
        hunks=(hunk,),
        sha256=("a" * 64, "b" * 64),
        source="stored",
    )
    helper = CodeFile(
        "toy/weights.py",
        "added",
        stages=("label",),
        line=1,
        snippet="WEIGHTS = {}",
        hunks=(CodeHunk("@@ -0,0 +1 @@", 0, 1, ("+WEIGHTS = {}",)),),
        sha256=(None, "c" * 64),
        source="stored",
        untracked=("b",),
    )
    return CodeDiff(
        files=(ratio, helper),
        commits=("a" * 40, "b" * 40),
        dirty={"b": ("toy/weights.py",)},
        untracked={"b": ("toy/weights.py",)},
    )


def snapshot_pair(*, with_pipeline: bool = True) -> tuple[Snapshot, Snapshot]:
    """Two tiny real (in-memory) snapshots; with a pipeline.json whose `ratio` stage reads input `events`."""
    members: dict[str, bytes] = {"env/python.json": canonical.dumps({"implementation": "cpython", "version": "3.11.7"})}
    if with_pipeline:
        members["pipeline/pipeline.json"] = canonical.dumps(pipeline_record())
    a = assemble_snapshot(members, fingerprint="sha256:" + "1" * 64, label="good", reproducible=True)
    b = assemble_snapshot(members, fingerprint="sha256:" + "2" * 64, label="bad", reproducible=True)
    return a, b


def pipeline_record() -> dict[str, Any]:
    """A valid pipeline/pipeline.json: clean (reads events) → ratio (reads events and clean's output)."""

    def stage(index: int, name: str, inputs: list[str] | None) -> dict[str, Any]:
        return {
            "index": index,
            "name": name,
            "kind": "call",
            "call": f"toy.stages:{name}",
            "inputs": inputs,
            "accepts": None,
            "status": "ok",
            "record": f"pipeline/stages/{index:02d}-{name}.json",
        }

    return {
        "name": "toy",
        "source": "envsnap.toml",
        "accepts": "pandas",
        "inputs": ["events", "users"],
        "stages": [stage(1, "clean", None), stage(2, "ratio", ["events"])],
        "status": "ok",
        "failed_stage": None,
        "error": None,
        "runner": {"mode": "in-process", "python": None, "added_by_runner": [], "preloaded_distributions": []},
    }


def sample_diff() -> SnapshotDiff:
    """The full hand-built SnapshotDiff, suspects ranked by the real ranking."""
    from envsnap.diff.suspects import rank_suspects

    a, b = snapshot_pair()
    env, data, code = env_diff(), data_diff(), code_diff()
    ref_a = SnapshotRef(
        "/tmp/runs/good.envsnap",
        "6f1c0d2e-0000-4000-8000-000000000001",
        "nightly-good",
        "2026-01-02T03:04:05Z",
        "sha256:" + "1" * 64,
        0,
    )
    ref_b = SnapshotRef(
        "/tmp/runs/bad.envsnap",
        "6f1c0d2e-0000-4000-8000-000000000002",
        "nightly-bad",
        "2026-01-03T03:04:05Z",
        "sha256:" + "2" * 64,
        0,
    )
    return SnapshotDiff(
        a=ref_a,
        b=ref_b,
        env=env,
        data=data,
        suspects=rank_suspects(env, data, a, b, code=code),
        notes=("stage label cannot be compared: stage missing in b",),
        options={"rtol": 0.0, "atol": 0.0, "keys": [], "max_rows": 10},
        code=code,
    )


if __name__ == "__main__":  # pragma: no cover - a convenience to look at the document
    print(json.dumps(sample_diff().to_dict(), indent=2, default=str))
