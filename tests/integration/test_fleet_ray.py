"""A real local Ray cluster (``ray start --head`` on 127.0.0.1 plus ``ray start --address``): fleet capture,
skew across nodes, two fleets compared, and the bad inputs (unreachable address, a node dying mid-capture).

The second node is "drifted": its workers run a venv with another six and OMP_NUM_THREADS=3, and that venv
cannot import envsnap. One cluster per session; every node is ended by its pid at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envsnap.snapshot.fleet import read_fleet
from envsnap.snapshot.reader import open_snapshot
from tests.integration.fleet_env import LocalRayCluster, drift_venv, driver_env, free_port

pytestmark = pytest.mark.slow

CANARY = "fleet-canary-Zq81vX3r-secret"
OMP3 = {"env_vars": {"OMP_NUM_THREADS": "3", "EXAMPLE_API_TOKEN": CANARY}}
ENVSNAP = [sys.executable, "-m", "envsnap"]


class Cluster:
    """The session's cluster and what the tests need to know about it."""

    def __init__(self, ray_cluster: LocalRayCluster, drift_python: str) -> None:
        self.ray_cluster = ray_cluster
        self.drift_python = drift_python
        self.address = ray_cluster.address


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    drift_python = drift_venv(tmp_path_factory.getbasetemp() / "fleet-drift-venv")
    ray_cluster = LocalRayCluster()
    with pytest.MonkeyPatch.context() as mp:
        # This process is a driver of the loopback cluster (see fleet_env.driver_env); set before ray loads.
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            ray_cluster.start_head()
            ray_cluster.add_node(drift_python, env={"OMP_NUM_THREADS": "3"})
            import ray

            ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
            try:
                yield Cluster(ray_cluster, drift_python)
            finally:
                ray.shutdown()
        finally:
            ray_cluster.shutdown()


@pytest.fixture(scope="session")
def library_fleet(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet captured through the library API, in this (already connected) process."""
    from envsnap.integrations.ray import capture_cluster

    out = tmp_path_factory.mktemp("fleet") / "lib.envsnap"
    capture_cluster(cluster.address, out, runtime_envs={"omp3": OMP3}, git=False, timeout=180)
    return out


@pytest.fixture(scope="session")
def cli_fleet(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fleet captured by ``envsnap capture --ray`` in a subprocess (it connects and disconnects)."""
    where = tmp_path_factory.mktemp("fleet")
    out = where / "cli"
    # Run away from the repository: Ray puts the driver's directory on its workers' sys.path.
    proc = subprocess.run(
        [*ENVSNAP, "capture", "--ray", cluster.address, "-o", str(out), "--no-git", "--reproducible"],
        capture_output=True, text=True, env=driver_env(), timeout=300, check=False, cwd=where,
    )  # fmt: skip
    return out, proc


def _nodes(path: Path) -> dict[str, Any]:
    with open_snapshot(path) as snap:
        return {n["key"]: n for n in snap.read_json("fleet.json")["nodes"]}


def _node_section(path: Path, key: str, section: str) -> Any:
    with open_snapshot(path) as snap:
        return snap.read_json(f"nodes/{key}/env/{section}.json")


def _six(path: Path, key: str) -> str:
    packages = _node_section(path, key, "packages")
    return next(d["version"] for d in packages["distributions"] if d["normalized_name"] == "six")


def test_library_capture_has_every_node_in_every_runtime(library_fleet: Path, cluster: Cluster) -> None:
    nodes = _nodes(library_fleet)
    assert len(nodes) == 4, nodes.keys()  # 2 nodes x (default, omp3)
    assert {n["status"] for n in nodes.values()} == {"ok"}
    assert sorted(n["runtime"] for n in nodes.values()) == ["default", "default", "omp3", "omp3"]
    with open_snapshot(library_fleet) as snap:
        report = snap.verify()  # every member hash-checked and every JSON member schema-validated
        assert report.members == len(snap.members())
        assert "env/packages.json" in snap  # the driver's own snapshot is the top level
        fleet = read_fleet(snap)
    assert fleet.engine == "ray" and fleet.missing == ()
    drifted = next(k for k, n in nodes.items() if n["runtime"] == "default" and not n["head"])
    head = next(k for k, n in nodes.items() if n["runtime"] == "default" and n["head"])
    assert _six(library_fleet, drifted) == "1.16.0"
    assert _six(library_fleet, head) != "1.16.0"
    assert _node_section(library_fleet, drifted, "python")["executable"] == cluster.drift_python
    assert _node_section(library_fleet, drifted, "threads")["configured"]["OMP_NUM_THREADS"] == "3"
    for key, node in nodes.items():
        if node["runtime"] == "omp3":
            assert _node_section(library_fleet, key, "threads")["configured"]["OMP_NUM_THREADS"] == "3"
            variables = _node_section(library_fleet, key, "envvars")["variables"]
            assert variables["EXAMPLE_API_TOKEN"] == {"redacted": True}


def test_a_worker_without_envsnap_is_captured(
    cluster: Cluster, cli_fleet: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # The payload needs ray on the worker, never envsnap: the drifted node's Python cannot import it.
    out, proc = cli_fleet
    assert proc.returncode == 0, proc.stderr
    check = [cluster.drift_python, "-c", "import envsnap"]
    failed = subprocess.run(check, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert failed.returncode != 0 and "No module named 'envsnap'" in failed.stderr
    drifted = next(k for k, n in _nodes(out).items() if not n["head"])
    assert _node_section(out, drifted, "python")["executable"] == cluster.drift_python
    site_dirs = _node_section(out, drifted, "packages")["site_dirs"]
    assert not any(Path(d, "envsnap", "__init__.py").exists() for d in site_dirs), site_dirs


def test_no_secret_value_of_a_runtime_env_is_stored(library_fleet: Path) -> None:
    with open_snapshot(library_fleet) as snap:
        for member, data in snap.iter_member_bytes():
            assert CANARY.encode() not in data, member
        runtimes = {r["name"]: r for r in snap.read_json("fleet.json")["runtimes"]}
    assert runtimes["omp3"]["env_vars"] == ["EXAMPLE_API_TOKEN", "OMP_NUM_THREADS"]


def test_across_nodes_names_the_drifted_node_and_what_differs(library_fleet: Path) -> None:
    nodes = _nodes(library_fleet)
    drifted = next(k for k, n in nodes.items() if n["runtime"] == "default" and not n["head"])
    proc = subprocess.run(
        [*ENVSNAP, "diff", str(library_fleet), "--across-nodes", "--json"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    skew = json.loads(proc.stdout)
    assert skew["kind"] == "fleet-skew"
    default = next(r for r in skew["runtimes"] if r["runtime"] == "default")
    assert [n["key"] for n in default["deviating"]] == [drifted]
    assert default["tie_broken_by"] == "the driver's node"  # 1 node against 1: the driver's node is the reference
    subjects = [s["subject"] for s in default["deviating"][0]["suspects"]]
    assert "six" in subjects and any("OMP_NUM_THREADS" in s for s in subjects), subjects
    text = subprocess.run(
        [*ENVSNAP, "diff", str(library_fleet), "--across-nodes", "--fail-on", "env"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert text.returncode == 1
    assert f"{drifted} on " in text.stdout and "package six: 1.17.0 -> 1.16.0" in text.stdout
    assert "OMP_NUM_THREADS" in text.stdout


def test_cli_capture_writes_a_fleet(cli_fleet: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = cli_fleet
    assert proc.returncode == 0, proc.stderr
    assert "2 of 2 node groups captured" in proc.stdout
    nodes = _nodes(out)
    assert {n["runtime"] for n in nodes.values()} == {"default"}
    with open_snapshot(out) as snap:
        fleet = snap.read_json("fleet.json")
    assert fleet["timings"] is None and all(n["wall_s"] is None for n in fleet["nodes"])  # --reproducible


def test_two_fleets_are_compared_runtime_by_runtime(
    library_fleet: Path, cli_fleet: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    proc = subprocess.run(
        [*ENVSNAP, "diff", str(library_fleet), str(cli_fleet[0]), "--json"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["kind"] == "fleet-diff"
    runtimes = {r["runtime"]: r for r in document["runtimes"]}
    assert runtimes["default"]["env"]["fingerprint_changed"] is False  # same cluster: same reference runtime
    assert runtimes["omp3"]["note"].startswith("not compared: no node of runtime 'omp3' was captured in b")
    assert runtimes["default"]["a_deviating"] == runtimes["default"]["b_deviating"]


def test_unreachable_address_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never.envsnap"
    proc = subprocess.run(
        [*ENVSNAP, "capture", "--ray", f"127.0.0.1:{free_port()}", "-o", str(out)],
        capture_output=True, text=True, env=driver_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot reach the Ray cluster" in proc.stderr
    assert not out.exists()


def test_a_node_dying_mid_capture_is_recorded_and_the_rest_is_written(cluster: Cluster, tmp_path: Path) -> None:
    from envsnap.integrations.ray import capture_cluster

    marker = tmp_path / "worker-started"
    doomed = cluster.ray_cluster.add_hanging_node(marker)
    out = tmp_path / "partial.envsnap"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            capture_cluster(cluster.address, out, git=False, timeout=150)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "no worker started on the hanging node"
    time.sleep(3)  # the capture task waits on that node's hung worker: kill the node under it
    cluster.ray_cluster.kill(doomed)
    thread.join(timeout=240)
    assert not thread.is_alive() and not errors, errors
    with open_snapshot(out) as snap:
        snap.verify()
        fleet = snap.read_json("fleet.json")
    failed = [n for n in fleet["nodes"] if n["status"] == "error"]
    assert len(failed) == 1 and failed[0]["error"], fleet["nodes"]
    assert fleet["missing"] == [failed[0]["key"]]
    assert sum(1 for n in fleet["nodes"] if n["status"] == "ok") == 2
    assert os.path.getsize(out) > 0
