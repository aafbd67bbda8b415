"""The typed sections (envsnap.snapshot.sections) on real members: exact round trips, errors naming the field.

Members come from a real in-process capture, a real pipeline run (one passing, one with a failing stage) and
the H200 host capture shipped as a fixture (cgroup limits, a GPU host's packages), so that every field is
checked against what the probes really write.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import envsnap
from envsnap.capture import capture
from envsnap.errors import SchemaError
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.sections import (
    PackagesSection,
    PipelineSection,
    PythonSection,
    SystemSection,
    ThreadsSection,
)

GPU_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "gpu" / "h200-capture.envsnap"
TYPED = (PythonSection, PackagesSection, SystemSection, ThreadsSection, PipelineSection)
Section = PythonSection | PackagesSection | SystemSection | ThreadsSection | PipelineSection


def _pipeline(fail: bool) -> envsnap.pipeline.Pipeline:
    pipeline = envsnap.pipeline.Pipeline("tiny", accepts="arrow")

    @pipeline.stage()
    def clean(table: pa.Table) -> pa.Table:
        return table.filter(pa.compute.is_valid(table["amount"]))

    @pipeline.stage()
    def double(table: pa.Table) -> pa.Table:
        if fail:
            raise RuntimeError("stage failed on purpose")
        return table

    return pipeline


def _events() -> pa.Table:
    amounts = [float(i) if i % 4 else None for i in range(12)]
    return pa.table({"user": [f"u{i % 3}" for i in range(12)], "amount": amounts})


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, Any]]:
    """(where, member, parsed JSON) of every typed member of the real snapshots."""
    tmp = tmp_path_factory.mktemp("sections")
    snaps: dict[str, Snapshot] = {"captured": capture(tmp / "captured", git=False, cwd=tmp)}
    for label, fail in (("ran", False), ("failed", True)):
        snaps[label] = envsnap.run_pipeline(_pipeline(fail), inputs={"events": _events()}, output=tmp / label).snapshot
    out = [
        (label, cls.member, snap.read_json(cls.member))
        for label, snap in snaps.items()
        for cls in TYPED
        if cls.member in snap
    ]
    with zipfile.ZipFile(GPU_FIXTURE) as archive:
        names = set(archive.namelist())
        out += [("h200", c.member, json.loads(archive.read(c.member))) for c in TYPED if c.member in names]
    return out


def _type_of(member: str) -> type[Section]:
    return next(cls for cls in TYPED if cls.member == member)


def _real(members: list[tuple[str, str, Any]], member: str) -> Any:
    return copy.deepcopy(next(data for _, m, data in members if m == member))


def test_every_typed_member_is_covered_by_real_captures(members: list[tuple[str, str, Any]]) -> None:
    assert {m for _, m, _ in members} == {cls.member for cls in TYPED}
    assert {w for w, m, _ in members if m == PipelineSection.member} == {"ran", "failed"}
    assert {w for w, m, _ in members if m == SystemSection.member} >= {"captured", "h200"}


def test_real_members_round_trip_exactly(members: list[tuple[str, str, Any]]) -> None:
    for where, member, data in members:
        section = _type_of(member).from_dict(data, source=where)
        assert section.to_dict() == data, f"{where}:{member}"
        assert type(section).from_dict(section.to_dict()) == section, f"{where}:{member}"
        # Canonical bytes too: what a writer would store is what was read.
        assert canonical.dumps(section.to_dict()) == canonical.dumps(data), f"{where}:{member}"


def test_fields_read_as_typed_values(members: list[tuple[str, str, Any]]) -> None:
    system = SystemSection.from_dict(_real(members, SystemSection.member))
    assert isinstance(system.cpu.flags, tuple)
    assert system.cgroup.memory.limit_bytes is None or system.cgroup.memory.limit_bytes > 0
    packages = PackagesSection.from_dict(_real(members, PackagesSection.member))
    assert "envsnap-ml" in {d.normalized_name for d in packages.distributions}
    pipeline = PipelineSection.from_dict(_real(members, PipelineSection.member))
    assert [s.name for s in pipeline.stages] == ["clean", "double"]
    assert all(s.target.endswith((".clean", ".double")) for s in pipeline.stages)


@pytest.mark.parametrize(
    ("member", "path", "value", "field"),
    [
        (SystemSection.member, ("cgroup", "memory", "limit_bytes"), "8G", "$.cgroup.memory.limit_bytes"),
        (SystemSection.member, ("cpu", "flags", 0), 7, "$.cpu.flags[0]"),
        (SystemSection.member, ("cgroup", "version"), "v3", "$.cgroup.version"),
        (ThreadsSection.member, ("effective", "usable_cpus"), True, "$.effective.usable_cpus"),
        (ThreadsSection.member, ("configured", "OMP_NUM_THREADS"), 4, "$.configured.OMP_NUM_THREADS"),
        (PackagesSection.member, ("distributions", 1, "version"), 2, "$.distributions[1].version"),
        (PackagesSection.member, ("distributions", 0, "location_kind"), "pypi", "$.distributions[0].location_kind"),
        (PipelineSection.member, ("stages", 1, "index"), "2", "$.stages[1].index"),
        (PipelineSection.member, ("runner", "mode"), "remote", "$.runner.mode"),
        (PythonSection.member, ("version",), 3.11, "$.version"),
        (PythonSection.member, ("markers", "python_version"), 3.11, "$.markers.python_version"),
    ],
)
def test_a_bad_field_raises_an_error_naming_its_path(
    members: list[tuple[str, str, Any]], member: str, path: tuple[Any, ...], value: Any, field: str
) -> None:
    data = _real(members, member)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(SchemaError) as caught:
        _type_of(member).from_dict(data, source="bad.envsnap")
    assert caught.value.field == field
    assert caught.value.member == member
    assert field in str(caught.value) and "bad.envsnap" in str(caught.value)


def test_missing_and_unknown_keys_name_the_object(members: list[tuple[str, str, Any]]) -> None:
    data = _real(members, SystemSection.member)
    del data["cgroup"]["memory"]["limit_bytes"]
    with pytest.raises(SchemaError, match="'limit_bytes' is a required property") as caught:
        SystemSection.from_dict(data)
    assert caught.value.field == "$.cgroup.memory"
    data = _real(members, ThreadsSection.member)
    data["effective"]["gpu_threads"] = 2
    with pytest.raises(SchemaError, match="'gpu_threads' was unexpected") as caught:
        ThreadsSection.from_dict(data)
    assert caught.value.field == "$.effective"


def test_python_section_has_no_schema_so_every_key_is_optional(members: list[tuple[str, str, Any]]) -> None:
    partial = PythonSection.from_dict({"implementation": "cpython", "version": "3.11.7"})
    assert (partial.version, partial.soabi, partial.markers) == ("3.11.7", None, None)
    newer = {**_real(members, PythonSection.member), "jit_enabled": True}
    section = PythonSection.from_dict(newer)
    assert section.extra == {"jit_enabled": True}
    assert section.to_dict() == newer


def test_pipeline_of_format_minor_0_round_trips_without_root_and_pythonpath(
    members: list[tuple[str, str, Any]],
) -> None:
    data = _real(members, PipelineSection.member)
    assert "root" in data and "pythonpath" in data
    old = {k: v for k, v in data.items() if k not in ("root", "pythonpath")}
    section = PipelineSection.from_dict(old)
    assert (section.root, section.pythonpath) == (None, None)
    assert section.to_dict() == old
    rootless = {**data, "root": None}
    assert PipelineSection.from_dict(rootless).to_dict() == rootless


def test_from_snapshot_skips_absent_and_failed_members() -> None:
    error = {"error": {"type": "OSError", "message": "no /proc"}}
    snap = assemble_snapshot(
        {
            "env/python.json": canonical.dumps({"implementation": "cpython", "version": "3.12.1"}),
            "env/system.json": canonical.dumps(error),
        },
        fingerprint="sha256:" + "0" * 64,
        reproducible=True,
    )
    python = PythonSection.from_snapshot(snap)
    assert python is not None and python.version == "3.12.1"
    assert SystemSection.from_snapshot(snap) is None
    assert ThreadsSection.from_snapshot(snap) is None
