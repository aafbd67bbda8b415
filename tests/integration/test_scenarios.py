"""The incident scenarios (fixtures/scenarios/NAME/scenario.py), end to end: each script makes a good and
a bad run of the churn example, and ``envsnap diff good bad`` must name the true cause first.

The scripts run as users run them (a subprocess of envsnap's interpreter); the job runs in the demo venv
(``.cache/demo-venv``, built from fixtures/example/requirements.txt when missing, shared with
``make demo``), so every test here may pip-install: all are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.replay_env import docker_base  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "fixtures" / "scenarios"


def scenario(name: str, out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Path]:
    """Run a scenario script into ``out``; returns the paths it printed (good, bad, ...)."""
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / name / "scenario.py"), "--out", str(out), *args],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    written = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    return {label: Path(path) for label, path in written.items()}


def diff(good: Path, bad: Path, *args: str) -> dict[str, Any]:
    """``envsnap diff --json good bad`` through the CLI."""
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "diff", str(good), str(bad), "--json", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def changed_sections(document: dict[str, Any]) -> set[str]:
    """The environment sections that changed (``job`` is how the run ended, not the environment)."""
    return {s["name"] for s in document["env"]["sections"] if s["changes"] and s["name"] != "job"}


def stage(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in document["data"]["stages"] if s["name"] == name)
    return found


def test_normalization_change_committed_in_git(tmp_path: Path) -> None:
    runs = scenario("normalization-change", tmp_path)
    doc = diff(runs["good"], runs["bad"])
    assert doc["data"]["first_diverging_stage"] == "preprocess"
    top = doc["suspects"][0]
    assert top["subject"] == "git code" and "code changed" in top["reason"]
    assert changed_sections(doc) == {"git"}, "only the commit moved"
    assert stage(doc, "ingest")["table"]["status"] == "identical"
    scaled = {c["column"] for c in stage(doc, "preprocess")["table"]["columns"] if c["status"] == "different"}
    assert {"tenure_months", "monthly_charges", "payment_failures"} <= scaled
    assert (
        "scale by the batch std"
        in subprocess.run(
            ["git", "log", "-1", "--format=%s"], cwd=tmp_path / "work", capture_output=True, text=True, check=True
        ).stdout
    )

    # Idempotent: a second run rebuilds the same commits and replaces the snapshots.
    commits = {label: _commit(runs[label]) for label in ("good", "bad")}
    again = scenario("normalization-change", tmp_path, "--quiet")
    assert {label: _commit(again[label]) for label in ("good", "bad")} == commits
    assert commits["good"] != commits["bad"]


def _commit(snapshot: Path) -> str:
    import envsnap

    commit: str = envsnap.load(snapshot).section("git")["commit"]
    return commit


def test_upstream_schema_change_is_the_input_finding(tmp_path: Path) -> None:
    runs = scenario("schema-change", tmp_path)
    doc = diff(runs["good"], runs["bad"])
    assert doc["data"]["first_diverging_stage"] == "ingest", "the first stage that reads the input"
    assert stage(doc, "ingest")["status"] == ["ok", "failed"]
    events = next(t for t in doc["data"]["inputs"] if t["name"] == "events")
    kinds = {(c["column"], c["kind"], c["before"], c["after"]) for c in events["schema"]}
    assert ("plan", "removed", "string", None) in kinds
    assert ("plan_id", "added", None, "int64") in kinds
    top = doc["suspects"][0]
    assert top["kind"] == "schema" and top["subject"] == "input events.plan"
    reason = top["reason"]
    assert "renamed to `plan_id` (string → int64)" in reason
    assert "9 columns at other positions" in reason
    assert "read by stage `ingest`" in reason
    assert doc["suspects"][1]["subject"] == "input events.plan_id"
    assert not changed_sections(doc), "same code, same environment"
    assert "the job fails in b: churn.StageInputError in stage `ingest` at churn/__init__.py" in doc["verdict"]


def test_dependency_upgrade_in_two_real_venvs(tmp_path: Path) -> None:
    runs = scenario("dependency-upgrade", tmp_path)
    doc = diff(runs["good"], runs["bad"])
    assert doc["data"]["first_diverging_stage"] == "ingest"
    top = doc["suspects"][0]
    assert top["subject"] == "pandas" and "2.2.3 → 3.0.6" in top["reason"]
    upgraded = {(p["name"], p["before"], p["after"]) for p in doc["env"]["packages"] if p["change"] == "upgraded"}
    assert upgraded == {("pandas", "2.2.3", "3.0.6")}, "numpy, pyarrow and the rest stay pinned"
    retyped = {c["column"]: c["after"] for c in stage(doc, "ingest")["table"]["schema"] if c["kind"] == "retyped"}
    assert retyped.get("customer_id") == "large_string", retyped


def test_thread_settings_change_reduction_order(tmp_path: Path) -> None:
    runs = scenario("thread-settings", tmp_path)
    exact = diff(runs["good"], runs["bad"])
    top = exact["suspects"][0]
    assert top["subject"] == "OMP_NUM_THREADS" and "2 → 1" in top["reason"]
    assert {s["subject"] for s in exact["suspects"]} == {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
    assert changed_sections(exact) == {"threads", "envvars"}
    # Exact comparison: the per-country dot products moved in their last bits, a divergence.
    assert exact["data"]["first_diverging_stage"] == "exposure"
    column = next(c for c in stage(exact, "exposure")["table"]["columns"] if c["column"] == "loss_share")
    assert column["status"] == "different" and 0 < column["max_rel_diff"] < 1e-12
    assert stage(exact, "postprocess")["table"]["status"] == "identical", "the shares do not reach the output"

    # Within a tolerance the same difference is numerical noise, and the report says so.
    tolerant = diff(runs["good"], runs["bad"], "--rtol", "1e-9")
    assert tolerant["data"]["first_diverging_stage"] is None
    assert stage(tolerant, "exposure")["table"]["status"] == "within_tolerance"
    assert tolerant["suspects"][0]["subject"] == "OMP_NUM_THREADS"
    assert "numerical noise" in tolerant["suspects"][0]["reason"]
    assert "numerical noise" not in top["reason"]


def test_pure_data_drift_with_a_clean_environment(tmp_path: Path) -> None:
    import envsnap

    runs = scenario("data-drift", tmp_path)
    doc = diff(runs["good"], runs["bad"])
    assert not changed_sections(doc), "environment unchanged"
    assert doc["suspects"][0]["kind"] == "input" and doc["suspects"][0]["subject"] == "input events"
    assert len(doc["suspects"]) == 1
    reason = doc["suspects"][0]["reason"]
    assert "PSI" in reason and "`tenure_months`" in reason and "`last_login_days`" in reason
    events = next(t for t in doc["data"]["inputs"] if t["name"] == "events")
    assert not events["schema"], "same schema: drift, not a schema change"
    psi = {s["column"]: s["psi"] for s in events["stats"]}
    assert psi["tenure_months"] > 0.25, "a major shift"
    nulls = {c["column"]: c["null_mismatches"] for c in events["columns"]}
    assert nulls["last_login_days"] > 200
    assert doc["data"]["first_diverging_stage"] == "ingest"

    def null_rate(snapshot: Path) -> float:
        record = envsnap.load(snapshot).read_json("data/inputs/events.json")
        rate: float = next(c for c in record["columns"] if c["name"] == "last_login_days")["null_rate"]
        return rate

    assert null_rate(runs["good"]) < 0.1
    assert null_rate(runs["bad"]) > 0.25


def test_memory_limit_reproduced_by_replay(tmp_path: Path, docker_base: str) -> None:  # noqa: F811
    env = {**os.environ, "ENVSNAP_BASE_IMAGE": docker_base}
    runs = scenario("memory-limit", tmp_path, env=env)
    doc = diff(runs["good"], runs["bad"])
    assert [s["subject"] for s in doc["suspects"]] == ["cgroup.memory.limit_bytes"]
    assert "memory limit" in doc["suspects"][0]["reason"] and str(96 << 20) in doc["suspects"][0]["reason"]
    assert changed_sections(doc) == {"system"}
    report = json.loads(runs["replay"].read_text(encoding="utf-8"))
    assert report["exit_code"] == 1
    failed = [s for s in report["stages"] if s["status"] == "failed"]
    assert failed and failed[0]["failure"] == "oom", report["stages"]
    assert report["first_diverging_stage"] == failed[0]["name"]
    assert "out of memory" in failed[0]["error"]


def test_missing_prerequisite_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS / "data-drift" / "scenario.py"), "--out", str(tmp_path),
         "--python", str(tmp_path / "no-such-venv")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"scenario data-drift: refused: --python {tmp_path / 'no-such-venv'}: no such interpreter"
    ]
    assert not (tmp_path / "good.envsnap").exists() and not (tmp_path / "bad.envsnap").exists()
