"""The capture options are declared once (the fields of CaptureOptions) and every layer is held to them.

A field added to ``CaptureOptions`` fails here until ``CaptureArguments`` (the keywords of ``capture()``,
``run_pipeline()`` and fleet captures), the command line's ``CAPTURE_FLAGS`` and the sample values below
know it.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import envsnap.capture
import envsnap.pipeline.runner
from envsnap.capture import load_probes
from envsnap.capture.base import CaptureArguments, CaptureOptions, InputSpec, SampleOptions, argument_names
from envsnap.capture.failure import on_failure
from envsnap.cli import _options as opt
from envsnap.cli import app
from envsnap.pipeline import Pipeline

#: One non-default value per capture argument, as the public API takes it, and the option it becomes.
SAMPLES: dict[str, tuple[Any, Any]] = {
    "python": (Path("/opt/venv"), "/opt/venv"),
    "label": ("nightly", "nightly"),
    "env_allow": (["APP_*"], ("APP_*",)),
    "git": (False, False),
    "reproducible": (True, True),
    "hashes": (True, True),
    "os_packages": (True, True),
    "cwd": (Path("/srv/job"), "/srv/job"),
    "argv": (["train.py", "--epochs", "3"], ("train.py", "--epochs", "3")),
    "inputs": ({"events": "events.parquet"}, (InputSpec("events", "events.parquet"),)),
    "sampling": (SampleOptions(rows=5), SampleOptions(rows=5)),
    "artifacts": ([Path("model.pkl")], ("model.pkl",)),
    "lockfiles": ([Path("uv.lock")], ("uv.lock",)),
    "lockfile_kind": ("requirements", "requirements"),
    "config_files": (["conf/*.yaml"], ("conf/*.yaml",)),
    "source": (False, False),
}
#: Capture options the command line does not set: the command runs from a directory, with its own argv.
NOT_FLAGS = {"cwd", "argv"}


class Stop(Exception):
    """Ends a capture once its options are known."""


def _recording(calls: list[CaptureOptions]) -> Any:
    def capture_snapshot(options: CaptureOptions, *args: Any, **kwargs: Any) -> Any:
        calls.append(options)
        raise Stop

    return capture_snapshot


def test_the_arguments_are_the_declared_fields() -> None:
    declared = {f.name for f in dataclasses.fields(CaptureOptions)}
    assert set(CaptureArguments.__annotations__) == set(argument_names())
    assert set(argument_names()) == set(SAMPLES)
    set_by_capture = {"environ", "failure", "command", "job_files", "code_files"}
    assert declared - set(argument_names()) == set_by_capture


def test_every_option_names_a_probe_that_exists() -> None:
    probes = {cls.name for cls in load_probes()}
    owners = {f.name: f.metadata["owner"] for f in dataclasses.fields(CaptureOptions)}
    assert {owner for owner in owners.values() if owner is not None} <= probes, owners


def test_build_converts_every_argument_as_declared() -> None:
    options = CaptureOptions.build(**{name: given for name, (given, _) in SAMPLES.items()})
    assert {name: getattr(options, name) for name in SAMPLES} == {name: want for name, (_, want) in SAMPLES.items()}
    defaults = CaptureOptions.build(python=None, cwd=None, argv=None, inputs=None, sampling=None)
    assert defaults.python is None and defaults.cwd == os.getcwd() and defaults.inputs == ()
    assert defaults.sampling == SampleOptions()
    with pytest.raises(TypeError, match="'environ'"):
        CaptureOptions.build(environ={})  # type: ignore[call-arg]


def test_capture_passes_every_argument_to_the_one_orchestration(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[CaptureOptions] = []
    monkeypatch.setattr(envsnap.capture, "capture_snapshot", _recording(calls))
    record = {"type": "ValueError", "message": "bad", "traceback": ""}
    with pytest.raises(Stop):
        envsnap.capture.capture(None, failure=record, **{n: given for n, (given, _) in SAMPLES.items()})
    assert {name: getattr(calls[0], name) for name in SAMPLES} == {name: want for name, (_, want) in SAMPLES.items()}
    assert calls[0].failure == record


def test_run_pipeline_passes_every_argument_to_the_one_orchestration(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[CaptureOptions] = []
    monkeypatch.setattr(envsnap.pipeline.runner, "capture_snapshot", _recording(calls))
    pipeline = Pipeline("p", inputs={"events": "default.parquet"})

    @pipeline.stage()
    def same(df: Any) -> Any:
        return df

    with pytest.raises(Stop):
        envsnap.pipeline.runner.run_pipeline(pipeline, **{n: given for n, (given, _) in SAMPLES.items()})
    assert {name: getattr(calls[0], name) for name in SAMPLES} == {name: want for name, (_, want) in SAMPLES.items()}
    with pytest.raises(TypeError, match="'failure'"):
        envsnap.pipeline.runner.run_pipeline(pipeline, failure={})  # type: ignore[call-arg]


def test_on_failure_keywords_are_capture_arguments() -> None:
    parameters = inspect.signature(on_failure).parameters
    assert set(parameters) - {"directory", "mlflow"} <= set(argument_names())  # mlflow: where it goes, not what


def test_the_command_line_fills_every_argument_but_the_process_facts() -> None:
    filled = {flag.fills for flag in opt.CAPTURE_FLAGS}
    assert filled | NOT_FLAGS == set(argument_names())
    assert len({flag.name for flag in opt.CAPTURE_FLAGS}) == len(opt.CAPTURE_FLAGS)


def test_capture_and_run_take_every_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every flag of the table reaches the capture options, through ``envsnap capture`` and ``envsnap run``."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    args = [
        *("--python", "/opt/venv", "--input", "events=events.parquet", "--rows", "5", "--seed", "7"),
        *("--method", "row-groups", "--columns", "a,b", "--mask", "user"),
        *("--artifact", "model.pkl", "--lockfile", "uv.lock", "--lockfile-kind", "uv.lock"),
        *("--config-file", "conf/*.yaml"),
        *("--label", "nightly", "--env-allow", "APP_*", "--no-git", "--reproducible", "--os-packages"),
        "--no-source",
    ]
    want = {
        "python": "/opt/venv",
        "inputs": (InputSpec("events", "events.parquet"),),
        "sampling": SampleOptions(rows=5, seed=7, method="row-groups", columns=("a", "b"), mask=("user",)),
        "artifacts": ("model.pkl",),
        "lockfiles": ("uv.lock",),
        "lockfile_kind": "uv.lock",
        "config_files": ("conf/*.yaml",),
        "label": "nightly",
        "env_allow": ("APP_*",),
        "git": False,
        "reproducible": True,
        "os_packages": True,
        "source": False,
    }
    assert set(want) | {"hashes"} | NOT_FLAGS == set(argument_names())
    calls: list[CaptureOptions] = []
    monkeypatch.setattr(envsnap.capture, "capture_snapshot", _recording(calls))
    monkeypatch.setattr(envsnap.pipeline.runner, "capture_snapshot", _recording(calls))
    runner = CliRunner()
    runner.invoke(app, ["capture", "-o", str(tmp_path / "c"), *args, "--hashes"])
    config = tmp_path / "envsnap.toml"
    config.write_text(
        '[pipeline]\nname = "p"\n[pipeline.inputs]\nevents = "x.parquet"\n'
        '[[pipeline.stages]]\nname = "s"\ncall = "json:dumps"\n',
        encoding="utf-8",
    )
    runner.invoke(app, ["run", "-c", str(config), "-o", str(tmp_path / "r"), *args])
    assert len(calls) == 2, "both commands reached the capture"
    captured, ran = calls
    assert {name: getattr(captured, name) for name in want} == want and captured.hashes is True
    assert {name: getattr(ran, name) for name in want} == want and ran.hashes is False


@pytest.mark.parametrize("command", ["capture", "run"])
def test_help_lists_every_flag_once(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    for flag in opt.CAPTURE_FLAGS:
        spelling = flag.option.param_decls[0]
        expected = 0 if (command, flag.name) == ("run", "hashes") else 1
        assert result.stdout.count(f" {spelling} ") == expected, spelling
    if command == "run":
        assert "Capture this interpreter" in result.stdout
        assert "instead of envsnap's own" not in result.stdout
