"""``envsnap.integrations.spark.capture_cluster(spark)``: every executor's Python worker environment.

The only module that imports ``pyspark``. A real job (``mapPartitions`` over a few partitions per
executor) runs the stdlib-only payload (:mod:`envsnap._target.node_probe`) in the executors' Python
workers; pyspark's cloudpickle ships it by value, so executors need pyspark, not envsnap. Answers are
grouped by executor (its id, read from the worker's environment), one node group per executor:
``nodes/executor-<id>/``. An executor no task reached, and every executor of a job that failed, is a
node group with an error record; the fleet is written with them listed under ``missing``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from envsnap.integrations.fleet import (
    DEFAULT_RUNTIME,
    ClusterError,
    FleetCapture,
    NodeResult,
    check_output,
    fleet_snapshot,
    node_key,
    partition_function,
    payload_args,
)

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["capture_cluster", "capture_master", "executor_id"]

#: Environment variables of a Spark Python worker that say which executor runs it.
IDENTITY_ENV = ("SPARK_EXECUTOR_ID", "SPARK_LOG_URL_STDERR", "SPARK_LOG_URL_STDOUT", "SPARK_EXECUTOR_DIRS")
TASKS_PER_EXECUTOR = 2
_EXECUTOR_IN_URL = re.compile(r"[?&]executorId=([A-Za-z0-9_.-]+)")


def executor_id(facts: dict[str, Any]) -> str:
    """Which executor answered: ``SPARK_EXECUTOR_ID``, the id in its log URL, else its directory."""
    identity = facts.get("identity") or {}
    if identity.get("SPARK_EXECUTOR_ID"):
        return str(identity["SPARK_EXECUTOR_ID"])
    for name in ("SPARK_LOG_URL_STDERR", "SPARK_LOG_URL_STDOUT"):
        found = _EXECUTOR_IN_URL.search(str(identity.get(name) or ""))
        if found:
            return found.group(1)
    directory = str(identity.get("SPARK_EXECUTOR_DIRS") or "").rstrip("/")
    if directory:
        return os.path.basename(directory)
    return f"{facts.get('hostname')}-{facts.get('ppid')}"


def _executor_ids(sc: Any) -> list[str]:
    """The executors registered with the application (the driver excluded), as Spark names them."""
    try:
        ids = sc._jsc.sc().getExecutorIds()  # a Scala Seq through py4j
        return sorted(str(ids.apply(i)) for i in range(ids.size()))
    except Exception:  # noqa: BLE001 - an API Spark does not promise; the answers name the executors anyway
        return []


def _wait_for_executors(sc: Any, wanted: int | None, timeout: float) -> list[str]:
    deadline = time.monotonic() + min(timeout, 120.0)
    ids = _executor_ids(sc)
    while time.monotonic() < deadline and (not ids or (wanted is not None and len(ids) < wanted)):
        time.sleep(0.5)
        ids = _executor_ids(sc)
    return ids


def _run_job(
    sc: Any, run_partition: Any, partitions: int, expected: list[str], env_allow: tuple[str, ...], started: float
) -> FleetCapture:
    """Run the payload's job over ``partitions`` tasks and group the answers by executor."""
    driver_done = time.monotonic()
    answers: dict[str, dict[str, Any]] = {}
    job_error: str | None = None
    try:
        sc.setJobDescription("envsnap fleet capture")
        rdd = sc.parallelize(range(partitions), partitions)
        for facts in rdd.mapPartitions(run_partition).collect():
            if isinstance(facts, dict):
                answers.setdefault(executor_id(facts), facts)
    except Exception as exc:  # noqa: BLE001 - Py4JJavaError: the job failed; every executor is recorded as missing
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        job_error = f"the capture job failed: {type(exc).__name__}: {lines[0] if lines else ''}"[:500]
    results = []
    for executor in sorted(set(expected) | set(answers)):
        facts = answers.get(executor)
        error = None
        if facts is None:
            error = job_error or f"no capture task ran on executor {executor} ({partitions} tasks)"
        results.append(
            NodeResult(
                key=node_key(f"executor-{executor}", DEFAULT_RUNTIME),
                node_id=executor,
                runtime=DEFAULT_RUNTIME,
                hostname=str(facts.get("hostname")) if facts else None,
                facts=facts,
                error=error,
            )
        )
    if not results:
        raise ClusterError(
            job_error or "the Spark application has no executor", hint="check the master and its workers"
        )
    from pyspark import __version__ as pyspark_version

    return FleetCapture(
        engine="spark",
        engine_version=str(pyspark_version),
        address=str(sc.master),
        runtimes={DEFAULT_RUNTIME: None},
        results=results,
        driver_node=None,
        env_allow=env_allow,
        wall_s={
            "driver_capture": round(driver_done - started, 3),
            "total": round(time.monotonic() - started, 3),
        },
    )


def capture_cluster(
    spark: Any,
    output: str | os.PathLike[str] | None = None,
    *,
    label: str | None = None,
    env_allow: Iterable[str] = (),
    git: bool = True,
    reproducible: bool = False,
    force: bool = False,
    timeout: float = 300.0,
    executors: int | None = None,
) -> Snapshot:
    """Capture every executor of the application behind ``spark`` (a SparkSession or SparkContext) into
    a fleet snapshot; write it to ``output`` when given.

    ``executors`` is how many executors to wait for (default: those registered, after waiting for at
    least one). A job that fails, or an executor that no task reached, becomes an error record.
    """
    out = os.fspath(output) if output is not None else None
    check_output(out, force)
    env_allow = tuple(env_allow)
    sc = getattr(spark, "sparkContext", spark)
    started = time.monotonic()
    expected = _wait_for_executors(sc, executors, timeout)
    partitions = max(1, len(expected) or executors or 1) * TASKS_PER_EXECUTOR
    payload_sources, options = payload_args(env_allow)
    options["identity_env"] = list(IDENTITY_ENV)
    run_partition = partition_function(payload_sources, options)
    return fleet_snapshot(
        lambda: _run_job(sc, run_partition, partitions, expected, env_allow, started),
        out,
        force=force,
        label=label,
        env_allow=env_allow,
        git=git,
        reproducible=reproducible,
    )


def capture_master(
    master: str,
    output: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Snapshot:
    """Start an application on ``master`` (``local-cluster[2,1,1024]``, ``spark://host:7077``...), capture
    its executors with :func:`capture_cluster`, stop it (``envsnap capture --spark MASTER``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ClusterError("pyspark is not installed", hint="pip install 'envsnap[spark]'") from exc
    builder = SparkSession.builder.master(master).appName("envsnap-fleet-capture").config("spark.ui.enabled", "false")
    if master.startswith("local"):
        # A local application needs no network: keep the driver on the loopback interface.
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(
            f"cannot start a Spark application on {master}: {lines[0] if lines else type(exc).__name__}"
        ) from exc
    try:
        return capture_cluster(session, output, **options)
    finally:
        session.stop()
