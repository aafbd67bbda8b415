"""Fleet snapshots without an engine: the payload run in this process, node sections against the local
probes, the fleet format, and skew / comparison logic on fleets assembled from real payload answers."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.system import SystemProbe
from envsnap.capture.target import in_process
from envsnap.diff.fleet import across_nodes, compare_fleets
from envsnap.diff.fleet_render import comparison_text, skew_text
from envsnap.integrations.fleet import (
    ClusterError,
    FleetCapture,
    NodeResult,
    check_runtime_name,
    fleet_snapshot,
    node_key,
    node_members,
    payload_args,
    payload_function,
)
from envsnap.snapshot.fleet import read_fleet
from envsnap.snapshot.reader import open_snapshot
from envsnap.snapshot.schema import schema_name, validate_member

SECRET = "unit-canary-9f8e7d6c-secret"


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    """The payload's answer for this process, with a secret and a thread knob in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MY_SERVICE_PASSWORD", SECRET)
        mp.setenv("OMP_NUM_THREADS", "2")
        return payload_function()(*payload_args())


@pytest.fixture(scope="module")
def driver() -> dict[str, Any]:
    """The capture arguments of the driver's own snapshot, the top level of every fleet here."""
    return {"label": "driver", "env_allow": (), "git": False, "reproducible": True}


def _with_package(facts: dict[str, Any], name: str, version: str) -> dict[str, Any]:
    changed = copy.deepcopy(facts)
    for dist in changed["inspect"]["distributions"]:
        if dist["normalized_name"] == name:
            dist["version"] = version
    return changed


def _with_env(facts: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    changed = copy.deepcopy(facts)
    changed["environment"]["values"][name] = value
    return changed


def _fleet(tmp_path: Path, driver: Any, answers: list[tuple[str, dict[str, Any]]], name: str) -> Path:
    results = [
        NodeResult(key=node_key(k), node_id=k, hostname=f"host-{k}", head=i == 0, facts=f)
        for i, (k, f) in enumerate(answers)
    ]
    fleet = FleetCapture("ray", "0.0", "127.0.0.1:1", {"default": None}, results, driver_node=answers[0][0])
    out = tmp_path / name
    fleet_snapshot(lambda: fleet, out, **driver)
    return out


def test_payload_sends_names_of_every_variable_but_values_only_of_allowlisted_ones(facts: dict[str, Any]) -> None:
    environment = facts["environment"]
    assert "MY_SERVICE_PASSWORD" in environment["names"]
    assert "MY_SERVICE_PASSWORD" not in environment["values"]
    assert environment["values"]["OMP_NUM_THREADS"] == "2"
    assert SECRET not in json.dumps(facts)


def test_node_sections_match_the_local_probes_and_their_schemas(facts: dict[str, Any]) -> None:
    members, statuses, fingerprint = node_members(facts)
    assert {s.status for s in statuses.values()} == {"ok"}, statuses
    assert fingerprint.startswith("sha256:")
    parsed = {m: json.loads(data) for m, data in members.items()}
    for member, data in parsed.items():
        validate_member("<test>", member, data)
    local = SystemProbe().collect(CaptureContext(CaptureOptions(), in_process))
    node_system = parsed["env/system.json"]
    for key in ("os", "kernel", "glibc", "memory", "cgroup"):
        assert node_system[key] == local[key], key
    assert node_system["cpu"]["model"] == local["cpu"]["model"]
    assert node_system["cpu"]["flags"] == local["cpu"]["flags"]
    assert parsed["env/threads.json"]["configured"]["OMP_NUM_THREADS"] == "2"
    assert parsed["env/envvars.json"]["variables"]["MY_SERVICE_PASSWORD"] == {"redacted": True}
    assert parsed["env/python.json"]["captured_in_process"] is False


def test_a_worker_python_that_cannot_run_the_payload_is_an_error_record() -> None:
    sources, options = payload_args()
    answer = payload_function()({**sources, "interpreter": "raise ImportError('no json here')"}, options)
    result = NodeResult(key="n1", node_id="n1", facts=answer)
    assert result.failed() is not None and "ImportError: no json here" in str(result.failed())


def test_runtime_names_and_keys() -> None:
    assert node_key("ABCDEF123456") == "abcdef123456"
    assert node_key("abc", "omp3") == "abc--omp3"
    assert check_runtime_name("omp-3.x") == "omp-3.x"
    for bad in ("default", "Big", "a--b", "", "x" * 41, "../x"):
        with pytest.raises(ClusterError):
            check_runtime_name(bad)


def test_node_members_share_the_schemas_of_their_top_level_twins() -> None:
    assert schema_name("nodes/abc/env/python.json") == schema_name("env/python.json")
    assert schema_name("nodes/abc--omp3/env/threads.json") == "env.threads.schema.json"
    assert schema_name("fleet.json") == "fleet.schema.json"


def test_fleet_is_a_readable_snapshot_with_no_secret(tmp_path: Path, driver: Any, facts: dict[str, Any]) -> None:
    dead = NodeResult(key="n3", node_id="n3", error="NodeDiedError: the node died")
    fleet = FleetCapture("ray", "0.0", "ray://user:pw@10.1.2.3:10001", {"default": None}, [dead])
    fleet.results.append(NodeResult(key="n1", node_id="n1", facts=facts))
    out = tmp_path / "fleet.envsnap"
    fleet_snapshot(lambda: fleet, out, **driver)
    with open_snapshot(out) as snap:
        snap.verify()  # node members validated with the env/* schemas, fleet.json with its own
        read = read_fleet(snap)
        raw = b"".join(data for _, data in snap.iter_member_bytes())
        index = snap.read_json("fleet.json")
    assert read.missing == ("n3",) and [n.status for n in read.nodes] == ["ok", "error"]
    assert SECRET.encode() not in raw and b"pw@" not in raw
    assert index["captured"] == 1 and index["expected"] == 2 and index["timings"] is None


def test_across_nodes_names_the_minority_node(tmp_path: Path, driver: Any, facts: dict[str, Any]) -> None:
    drifted = _with_env(_with_package(facts, "pytest", "1.0.0"), "OMP_NUM_THREADS", "8")
    path = _fleet(tmp_path, driver, [("n1", facts), ("n2", drifted), ("n3", facts)], "three")
    skew = across_nodes(path)
    (default,) = skew.runtimes
    assert default.majority == ("n1", "n3") and default.tie_broken_by is None
    assert [n.key for n in default.deviating] == ["n2"]
    subjects = [s.subject for s in default.deviating[0].suspects]
    assert "pytest" in subjects and "OMP_NUM_THREADS" in subjects
    text = skew_text(skew)
    assert "n2 on host-n2 differs from n1" in text and "package pytest:" in text
    assert skew.to_dict()["kind"] == "fleet-skew"


def test_a_tie_goes_to_the_drivers_node(tmp_path: Path, driver: Any, facts: dict[str, Any]) -> None:
    path = _fleet(tmp_path, driver, [("n2", _with_package(facts, "pytest", "1.0.0")), ("n1", facts)], "tie")
    (default,) = across_nodes(path).runtimes
    assert default.reference == "n2" and default.tie_broken_by == "the driver's node"
    assert [n.key for n in default.deviating] == ["n1"]


def test_two_fleets_compare_their_reference_nodes(tmp_path: Path, driver: Any, facts: dict[str, Any]) -> None:
    a = _fleet(tmp_path, driver, [("n1", facts), ("n2", facts)], "a")
    upgraded = _with_package(facts, "pytest", "99.0.0")
    b = _fleet(tmp_path, driver, [("m1", upgraded), ("m2", upgraded)], "b")
    comparison = compare_fleets(a, b)
    (default,) = comparison.runtimes
    assert default.a_reference == "n1" and default.b_reference == "m1"
    assert default.env is not None and [d.name for d in default.env.packages] == ["pytest"]
    assert comparison.changed and "pytest" in comparison.verdict
    assert "runtime default: a 2 node groups" in comparison_text(comparison, "driver diff")
    assert comparison.to_dict()["kind"] == "fleet-diff"


def test_a_gpu_node_reports_what_nvidia_smi_says(tmp_path: Path, facts: dict[str, Any]) -> None:
    # No GPU here: a stand-in nvidia-smi on the worker's PATH prints the H100's recorded output byte for
    # byte, so the payload's subprocess handling and the driver's parsing run for real.
    gpu_fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        f'#!/bin/sh\nif [ "$1" = "-q" ]; then cat "{gpu_fixtures}/nvidia-smi-q-x.xml"; '
        f'else cat "{gpu_fixtures}/nvidia-smi-compute-cap.csv"; fi\n',
        encoding="utf-8",
    )
    smi.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{tmp_path}:{os.environ.get('PATH', '')}")
        mp.setenv("CUDA_VISIBLE_DEVICES", "0")
        answer = payload_function()(*payload_args())
    members, _, _ = node_members(answer)
    gpu = json.loads(members["env/gpu.json"])
    validate_member("<test>", "env/gpu.json", gpu)
    recorded = json.loads((gpu_fixtures / "gpu-nvidia-smi.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in gpu.items() if k != "cuda_visible_devices"} == recorded
    assert gpu["cuda_visible_devices"] == "0"
    _, _, fingerprint = node_members(answer)
    assert fingerprint != node_members(facts)[2]  # the driver version and devices are in the node fingerprint
