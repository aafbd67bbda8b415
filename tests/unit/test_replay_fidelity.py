"""Replay fidelity without an engine: the real fidelity probe answers in a child interpreter, the report
comes from the section differs, and each kind of difference carries the reason the plan knows."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envsnap import _target
from envsnap.capture import run_probes
from envsnap.capture.base import CaptureOptions
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.python import PythonProbe
from envsnap.integrations.fleet_sections import NodeContext, NodeSystemProbe
from envsnap.replay import fidelity
from envsnap.replay.plan import Excluded, Package, ReplayPlan
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fidelity probe's answer for a child of this interpreter, shipped as a replay ships it."""
    work = tmp_path_factory.mktemp("fidelity")
    _target.install(work / "runner")
    argv = fidelity.probe_command(sys.executable, str(work / "runner"), str(work), ["ASKED"])
    proc = subprocess.run(argv, capture_output=True, text=True, env={"ASKED": "yes", "OTHER": "x"}, check=False)
    return fidelity.read_facts(sys.executable, proc.returncode, proc.stdout + proc.stderr, work / fidelity.FACTS_FILE)


def _snapshot(facts: dict[str, Any]) -> Snapshot:
    """A snapshot whose python, packages and system sections are what the capture probes make of ``facts``."""
    node = {"inspect": facts["inspect"], "system": facts["host"]}
    ctx = NodeContext(CaptureOptions(environ={}, git=False, argv=(), cwd="/"), node, {})
    members, statuses = run_probes(ctx, [PythonProbe, PackagesProbe, NodeSystemProbe])
    return assemble_snapshot(members, fingerprint="sha256:" + "0" * 64, probes=statuses, reproducible=True)


def _plan(**changes: Any) -> ReplayPlan:
    plan = ReplayPlan(
        snapshot="snap.envsnap",
        snapshot_id="id",
        label=None,
        fingerprint="sha256:" + "0" * 64,
        python_version="3.11.0",
        python_implementation="cpython",
        platform="linux-x86_64",
        glibc=None,
        base_image="python:3.11-slim",
        base_image_source="--base-image",
        packages=(),
        excluded=(),
        env={"ASKED": "yes"},
        env_not_applied={},
        cpus=None,
        memory_bytes=None,
        match_resources=True,
        stages=(),
        inputs=(),
        pipeline_root=None,
        pythonpath=(),
    )
    return dataclasses.replace(plan, **changes)


def test_the_probe_answers_what_the_capture_probes_read(facts: dict[str, Any]) -> None:
    assert facts["environ"] == {"ASKED": "yes"}  # only the variables asked for
    assert facts["inspect"]["python"]["executable"] == sys.executable
    assert not any(d.endswith(_target.PACKAGE) or "fidelity" in d for d in facts["inspect"]["site_dirs"])
    assert "cgroup" in facts["host"] and facts["host"]["uname"]["release"]


def test_the_same_runtime_has_no_difference(facts: dict[str, Any]) -> None:
    assert fidelity.differences(_snapshot(facts), _plan(), facts, engine="venv") == []


def test_every_difference_says_why(facts: dict[str, Any]) -> None:
    recorded = copy.deepcopy(facts)
    recorded["inspect"]["python"].update(version="3.11.9", executable="/elsewhere/bin/python", prefix="/elsewhere")
    dists = recorded["inspect"]["distributions"]
    pytest_dist = next(d for d in dists if d["normalized_name"] == "pytest")
    pytest_dist["version"] = "1.0.0"
    dists.append({**pytest_dist, "name": "gone", "normalized_name": "gone", "version": "2.0"})
    recorded["host"]["os_release"] = 'ID=plan9\nVERSION_ID="4"\n'
    recorded["host"]["cpuinfo"] = (facts["host"]["cpuinfo"] or "").replace("flags\t\t: ", "flags\t\t: madeupflag ")
    recorded["host"]["cgroup"] = {  # a 123 MiB limit, recorded on a cgroup v2 machine
        "mountinfo": "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        "dirs": {"/sys/fs/cgroup": "/sys/fs/cgroup"},
        "files": {"/sys/fs/cgroup/memory.max": f"{123 << 20}\n"},
    }
    plan = _plan(
        packages=(Package("pytest", "9.9", overridden_from="1.0.0"),),
        excluded=(Excluded("gone", "2.0", "local", "a local wheel that is not in the snapshot"),),
        env={"ASKED": "no"},
        memory_bytes=123 << 20,
    )
    found = {(d.layer, d.what): d for d in fidelity.differences(_snapshot(recorded), plan, facts, engine="docker")}
    assert found[("python", "version")].note == "from the base image python:3.11-slim"
    assert ("python", "executable") not in found and ("python", "prefix") not in found  # every replay's own venv
    assert ("python", "build") not in found  # implied by the version
    assert found[("packages", "pytest")].note == "--with"
    assert found[("packages", "gone")].replayed == "(absent)" and found[("packages", "gone")].note.startswith(
        "not installed"
    )
    assert found[("system", "os.id")].recorded == "plan9" and "base image" in found[("system", "os.id")].note
    flags = found[("system", "cpu.flags")]
    assert "missing here: madeupflag" in flags.note
    memory = found[("resources", "cgroup.memory.limit_bytes")]
    assert (memory.recorded, memory.note) == (str(123 << 20), "mirrored")
    assert not [d for d in found if d[1] in ("cgroup.version", "cgroup.cpuset_cpus")]  # the engine's cgroups
    assert found[("env", "ASKED")].recorded == "no" and found[("env", "ASKED")].replayed == "yes"


def test_a_probe_that_fails_is_an_error_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(_target.TargetExitError, match="the fidelity probe in py exited 1: boom"):
        fidelity.read_facts("py", 1, "boom\n", tmp_path / "missing.json")
    with pytest.raises(_target.TargetOutputError):
        fidelity.read_facts("py", 0, "", tmp_path / "missing.json")
    (tmp_path / "half.json").write_text('{"inspect": {}}', encoding="utf-8")
    with pytest.raises(_target.TargetAnswerError, match="'host'"):
        fidelity.read_facts("py", 0, "", tmp_path / "half.json")
