"""The fleet options of ``envsnap capture`` and ``envsnap diff``: usage errors and a non-fleet snapshot,
in-process with typer's CliRunner (the engines themselves run in tests/integration/test_fleet_*.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from envsnap.cli import app

runner = CliRunner()


def test_ray_and_spark_together_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["capture", "--ray", "127.0.0.1:1", "--spark", "local[1]", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not both" in result.output
    assert not (tmp_path / "x").exists()


def test_a_runtime_env_without_ray_or_with_bad_json_is_a_usage_error() -> None:
    result = runner.invoke(app, ["capture", "--ray-runtime-env", 'omp3={"env_vars": {}}'])
    assert result.exit_code == 2 and "--ray-runtime-env goes with --ray" in result.output
    result = runner.invoke(app, ["capture", "--ray", "127.0.0.1:1", "--ray-runtime-env", "omp3={not json"])
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_a_bad_runtime_name_is_one_line_exit_3() -> None:
    result = runner.invoke(app, ["capture", "--ray", "127.0.0.1:1", "--ray-runtime-env", "Bad--Name={}"])
    assert result.exit_code == 3
    assert "runtime name 'Bad--Name' is not usable" in result.output


def test_local_only_options_do_not_go_with_a_fleet(tmp_path: Path) -> None:
    result = runner.invoke(app, ["capture", "--ray", "127.0.0.1:1", "--input", f"x={tmp_path}"])
    assert result.exit_code == 2 and "do not go with a fleet" in result.output


def test_across_nodes_on_a_plain_snapshot_is_one_line_exit_3(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("plain.envsnap")
    result = runner.invoke(app, ["diff", str(path), "--across-nodes"])
    assert result.exit_code == 3
    assert "is not a fleet snapshot" in result.output and "Traceback" not in result.output


def test_across_nodes_takes_one_fleet(write_snapshot: Callable[[str], Path]) -> None:
    path = write_snapshot("plain.envsnap")
    result = runner.invoke(app, ["diff", str(path), str(path), "--across-nodes"])
    assert result.exit_code == 2 and "give only A" in result.output
