"""Snapshots in MLflow runs against a real tracking store (sqlite backend, local artifact root).

One store per module (mlflow's first database creation takes seconds). The commands run as a user runs
them: ``envsnap capture --mlflow`` and ``envsnap run --mlflow`` in real subprocesses, ``envsnap diff``
of two ``runs:/`` URIs too; the rest through the typer app in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsnap.capture import capture
from envsnap.capture.failure import EnvsnapCaptureWarning, on_failure
from envsnap.cli import app
from envsnap.errors import EnvsnapError, StorageError
from envsnap.integrations.mlflow import log_snapshot
from envsnap.snapshot.reader import open_snapshot
from tests.integration.s3_env import S3Server, s3_env, s3_server  # noqa: F401

mlflow = pytest.importorskip("mlflow")

ENVSNAP = [sys.executable, "-m", "envsnap"]
runner = CliRunner()


@dataclass
class Store:
    root: Path
    uri: str
    experiment_id: str

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_EXPERIMENT_ID": self.experiment_id}

    def client(self) -> Any:
        return mlflow.MlflowClient(tracking_uri=self.uri)

    def new_run(self) -> str:
        return str(self.client().create_run(self.experiment_id).info.run_id)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("envsnap-tests", artifact_location=(root / "artifacts").as_uri())
    return Store(root, uri, str(experiment_id))


@pytest.fixture
def tracking(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    yield store
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _cli(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | env
    return subprocess.run(
        [*ENVSNAP, *argv], cwd=cwd, env=full, capture_output=True, text=True, timeout=300, check=False
    )


def _snapshot(path: Path, label: str) -> Path:
    capture(path, label=label, git=False)
    return path


def test_two_runs_logged_from_the_cli_and_diffed_by_runs_uri(tracking: Store, tmp_path: Path) -> None:
    # A: `envsnap capture --mlflow` with no run named: a new run in MLFLOW_EXPERIMENT_ID
    proc = _cli(["capture", "--mlflow", "--no-git", "--label", "run-a", "-o", "a.envsnap"], tmp_path, tracking.env())
    assert proc.returncode == 0, proc.stderr
    logged = [line for line in proc.stdout.splitlines() if line.startswith("logged to MLflow: ")]
    assert len(logged) == 1, proc.stdout
    uri_a = logged[0].removeprefix("logged to MLflow: ")
    run_a = uri_a.split("/")[1]
    assert uri_a == f"runs:/{run_a}/envsnap/a.envsnap"
    info_a = tracking.client().get_run(run_a)
    assert info_a.info.experiment_id == tracking.experiment_id and info_a.info.status == "FINISHED"
    snap_a = open_snapshot(tmp_path / "a.envsnap")
    assert info_a.data.tags["envsnap.fingerprint"] == snap_a.fingerprint
    assert info_a.data.tags["envsnap.id"] == snap_a.id
    assert info_a.data.tags["envsnap.label"] == "run-a"
    assert info_a.data.tags["envsnap.kind"] == "environment"
    assert info_a.data.tags["envsnap.uri"] == uri_a

    # B: the job's own run (launched with MLFLOW_RUN_ID, which the job's mlflow.start_run() resumes)
    run_b = tracking.new_run()
    job = tmp_path / "train.py"
    job.write_text("import mlflow\nwith mlflow.start_run():\n    mlflow.log_param('lr', 0.1)\n")
    env_b = {**tracking.env(), "MLFLOW_RUN_ID": run_b}
    proc = _cli(["run", "--mlflow", "--no-git", "-o", "b.envsnap", "--", sys.executable, "train.py"], tmp_path, env_b)
    assert proc.returncode == 0, proc.stderr
    assert f"envsnap: logged to MLflow: runs:/{run_b}/envsnap/b.envsnap" in proc.stderr
    info_b = tracking.client().get_run(run_b)
    assert info_b.data.params == {"lr": "0.1"}  # the job logged to the same run
    assert info_b.data.tags["envsnap.kind"] == "command"

    # diff by runs:/ URI, as a user runs it: both resolve to their one snapshot
    proc = _cli(["diff", f"runs:/{run_a}/envsnap", f"runs:/{run_b}/envsnap"], tmp_path, tracking.env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and proc.stderr == ""
    # named by the URIs given, not by the private download directories
    assert f"(runs:/{run_a}/envsnap)" in proc.stdout and f"(runs:/{run_b}/envsnap)" in proc.stdout
    assert "envsnap-mlflow-" not in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.envsnap", "b.envsnap", "train.py"]


def test_the_first_run_logged_creates_a_new_sqlite_store(tmp_path: Path) -> None:
    # A team's first `--mlflow` against a sqlite:/// file that does not exist yet: the run is started there
    # (reading a runs:/ URI from a missing database stays an error: test_bad_runs_uris_are_one_line_exit_3).
    db = tmp_path / "fresh" / "mlflow.db"
    db.parent.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    proc = _cli(["capture", "--mlflow", "--no-git", "-o", "a.envsnap"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert db.is_file()
    uri = next(line for line in proc.stdout.splitlines() if line.startswith("logged to MLflow: ")).split(": ")[1]
    shown = _cli(["show", uri], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"snapshot    {uri}\n")


def test_every_reading_command_accepts_runs_uris(tracking: Store, tmp_path: Path) -> None:
    path = _snapshot(tmp_path / "s.envsnap", "read-me")
    run = tracking.new_run()
    uri = log_snapshot(path, run_id=run)
    assert uri == f"runs:/{run}/envsnap/s.envsnap"
    for target in (f"runs:/{run}/envsnap", uri):
        shown = runner.invoke(app, ["show", target])
        assert shown.exit_code == 0, shown.output
        assert "read-me" in shown.stdout
        verified = runner.invoke(app, ["verify", target])
        assert verified.exit_code == 0, verified.output
    exported = runner.invoke(app, ["export", f"runs:/{run}/envsnap", "--requirements", "-"])
    assert exported.exit_code == 0, exported.output
    planned = runner.invoke(app, ["replay", "--engine", "venv", "--dry-run", f"runs:/{run}/envsnap"])
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.startswith("replay plan for ") and "engine       venv" in planned.stdout


def test_run_of_a_pipeline_logs_to_the_named_run(tracking: Store, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    toy = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
    events = tmp_path / "events.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 3.0], "b": [10, 20, 30], "user": ["u1", "u2", "u1"]}), events)
    run = tracking.new_run()
    out = tmp_path / "p.envsnap"
    argv = ["run", "-c", str(toy / "envsnap.toml"), "-i", f"x={events}", "-o", str(out), "--no-git", "-q"]
    result = runner.invoke(app, [*argv, "--mlflow-run", run])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out), f"runs:/{run}/envsnap/p.envsnap"]
    assert tracking.client().get_run(run).data.tags["envsnap.kind"] == "pipeline"


def test_log_snapshot_api_and_a_directory_snapshot(tracking: Store, tmp_path: Path) -> None:
    snap = capture(tmp_path / "dir-snap", label="as-dir", git=False)
    with mlflow.start_run(experiment_id=tracking.experiment_id) as active:
        uri = log_snapshot(snap)  # the active run
    run = active.info.run_id
    assert uri == f"runs:/{run}/envsnap/dir-snap"
    listed = [a.path for a in tracking.client().list_artifacts(run, "envsnap/dir-snap")]
    assert "envsnap/dir-snap/manifest.json" in listed  # a directory artifact, not a zip
    with open_snapshot(f"runs:/{run}/envsnap") as back:
        assert back.fingerprint == snap.fingerprint and back.verify().members > 0
    assert tracking.client().get_run(run).data.tags["envsnap.label"] == "as-dir"

    # another artifact path, and a snapshot read from a runs:/ URI logged again
    other = tracking.new_run()
    assert log_snapshot(uri, artifact_path="snaps/nightly", run_id=other) == f"runs:/{other}/snaps/nightly/dir-snap"

    with pytest.raises(StorageError, match="no active MLflow run") as info:
        log_snapshot(snap)
    assert "\n" not in str(info.value)


def test_a_snapshot_on_s3_is_logged(tracking: Store, s3_env: S3Server, tmp_path: Path) -> None:  # noqa: F811
    from envsnap.core import storage

    local = _snapshot(tmp_path / "s3snap.envsnap", "from-s3")
    uri = f"s3://{s3_env.bucket}/mlflow/s3snap.envsnap"
    storage.upload_file(str(local), uri)
    run = tracking.new_run()
    assert log_snapshot(uri, run_id=run) == f"runs:/{run}/envsnap/s3snap.envsnap"
    with open_snapshot(f"runs:/{run}/envsnap") as back:
        assert back.label == "from-s3" and back.verify().members > 0
    with pytest.raises(EnvsnapError, match="no such snapshot object"):
        log_snapshot(f"s3://{s3_env.bucket}/mlflow/missing.envsnap", run_id=run)


def test_on_failure_logs_to_the_active_run(tracking: Store, tmp_path: Path) -> None:
    guard = on_failure(tmp_path / "fail", label="crash", git=False, mlflow=True)
    with pytest.raises(ZeroDivisionError), mlflow.start_run(experiment_id=tracking.experiment_id) as active, guard:
        _ = 1 / 0
    run = active.info.run_id
    assert guard.path is not None and guard.mlflow_uri == f"runs:/{run}/envsnap/{guard.path.name}"
    tags = tracking.client().get_run(run).data.tags
    assert tags["envsnap.label"] == "crash" and tags["envsnap.uri"] == guard.mlflow_uri

    # no active run: the snapshot is written, a warning says why it was not logged, the user's error comes out
    quiet = on_failure(tmp_path / "fail2", git=False, mlflow=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyError), quiet:
            raise KeyError("x")
    assert quiet.path is not None and quiet.path.exists() and quiet.mlflow_uri is None
    assert any(
        issubclass(w.category, EnvsnapCaptureWarning) and "no active MLflow run" in str(w.message) for w in caught
    )


def test_the_pytest_plugin_logs_failing_tests_to_the_run(tracking: Store, tmp_path: Path) -> None:
    run = tracking.new_run()
    (tmp_path / "test_job.py").write_text("def test_fails():\n    assert 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | tracking.env()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--envsnap-on-fail", "snaps", "--envsnap-mlflow"],
        cwd=tmp_path,
        env={**env, "MLFLOW_RUN_ID": run},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"logged to MLflow: runs:/{run}/envsnap/" in proc.stdout, proc.stdout
    with open_snapshot(f"runs:/{run}/envsnap") as snap:
        assert snap.label == "test_job.py::test_fails"


def _one_line_error(argv: list[str], match: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("envsnap: error: "), result.stderr
    assert match in lines[0], lines[0]


def test_bad_runs_uris_are_one_line_exit_3(tracking: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tracking.new_run()
    _one_line_error(["show", f"runs:/{empty}/envsnap"], "the run has no artifact 'envsnap'")
    two = tracking.new_run()
    for name in ("x", "y"):
        log_snapshot(_snapshot(tmp_path / f"{name}.envsnap", name), run_id=two)
    (tmp_path / "x.envsnap").unlink()
    (tmp_path / "y.envsnap").unlink()
    _one_line_error(["show", f"runs:/{two}/envsnap"], "the run has 2 snapshots there (x.envsnap, y.envsnap)")
    unknown = "0123456789abcdef0123456789abcdef"
    _one_line_error(["verify", f"runs:/{unknown}/envsnap"], "no such MLflow run")
    _one_line_error(["show", "runs:/"], "malformed runs:/ URI")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'missing.db'}")
    _one_line_error(["show", f"runs:/{two}/envsnap"], "no MLflow database at")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    _one_line_error(["show", f"runs:/{two}/envsnap"], "cannot reach the MLflow tracking server http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    _one_line_error(["diff", f"runs:/{two}/envsnap", f"runs:/{empty}/envsnap"], "MLFLOW_TRACKING_URI is not set")
    elsewhere = _snapshot(tracking.root / "kept.envsnap", "kept")
    with pytest.raises(StorageError, match="MLFLOW_TRACKING_URI is not set"):
        log_snapshot(elsewhere, run_id=two)  # a run id but no tracking store to find it in
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_a_subprocess_prints_one_line_and_capture_reports_a_failed_log(tracking: Store, tmp_path: Path) -> None:
    unknown = "fedcba9876543210fedcba9876543210"
    proc = _cli(["show", f"runs:/{unknown}/envsnap"], tmp_path, tracking.env())
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("envsnap: error: runs:/"), proc.stderr
    # logging to a run that does not exist: the snapshot stays written, exit 3, one line saying so
    proc = _cli(["capture", "-q", "--no-git", "--mlflow-run", unknown, "-o", "c.envsnap"], tmp_path, tracking.env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "the snapshot was written" in proc.stderr, proc.stderr
    assert (tmp_path / "c.envsnap").is_file()
