"""pyspark in ``local-cluster[2,1,1024]`` mode (two executors, each a JVM with its own Python workers): a real
mapPartitions job captures every executor's Python worker environment into the fleet format.

The executors' Python is the "drifted" venv (another six, no envsnap): the payload needs pyspark there,
never envsnap. One application per session, stopped at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envsnap.snapshot.reader import open_snapshot
from tests.integration.fleet_env import drift_venv

pytestmark = pytest.mark.slow

MASTER = "local-cluster[2,1,1024]"


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    drift_python = drift_venv(tmp_path_factory.getbasetemp() / "fleet-drift-venv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # every Spark server on the loopback interface
        mp.setenv("PYSPARK_PYTHON", drift_python)
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master(MASTER)
            .appName("envsnap-fleet-test")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        try:
            yield session, drift_python
        finally:
            session.stop()


@pytest.fixture(scope="session")
def spark_fleet(spark_session: tuple[Any, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from envsnap.integrations.spark import capture_cluster

    out = tmp_path_factory.mktemp("spark") / "fleet.envsnap"
    capture_cluster(spark_session[0], out, git=False, executors=2, timeout=240)
    return out


def test_every_executor_is_captured(spark_fleet: Path, spark_session: tuple[Any, str]) -> None:
    with open_snapshot(spark_fleet) as snap:
        snap.verify()
        fleet = snap.read_json("fleet.json")
        assert fleet["engine"] == "spark" and fleet["address"] == MASTER
        nodes = {n["key"]: n for n in fleet["nodes"]}
        assert sorted(nodes) == ["executor-0", "executor-1"], nodes
        assert {n["status"] for n in nodes.values()} == {"ok"} and fleet["missing"] == []
        for key in nodes:
            python = snap.read_json(f"nodes/{key}/env/python.json")
            assert python["executable"] == spark_session[1]  # the executors' PYSPARK_PYTHON, not the driver's
            packages = snap.read_json(f"nodes/{key}/env/packages.json")
            six = next(d["version"] for d in packages["distributions"] if d["normalized_name"] == "six")
            assert six == "1.16.0"
        driver_python = snap.read_json("env/python.json")
        assert driver_python["executable"] == sys.executable


def test_executors_alike_show_no_skew(spark_fleet: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "diff", str(spark_fleet), "--across-nodes", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    skew = json.loads(proc.stdout)
    (default,) = skew["runtimes"]
    assert default["deviating"] == [] and default["majority"] == ["executor-0", "executor-1"]
    assert skew["verdict"].startswith("no skew")


def test_a_bad_master_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never.envsnap"
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "capture", "--spark", "bogus://nowhere", "-o", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("envsnap: error: cannot start a Spark application")
    assert not out.exists()
