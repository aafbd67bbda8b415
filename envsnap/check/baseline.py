"""The baseline side of ``envsnap check``: its recorded inputs and stages, and ``envsnap baseline update``.

A baseline is a snapshot written by ``envsnap run`` (or :func:`envsnap.pipeline.run_pipeline`): it holds the
sampled inputs (``data/inputs/NAME.parquet``) and one intermediate per stage. :func:`rerun` runs a
pipeline on those inputs, every row in order, through ``run_pipeline``, so a rerun records its stages
exactly as the baseline's were recorded. :func:`update_baseline` turns such a rerun into the new
baseline, with who, when and why in its label.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.pipeline.model import Pipeline
    from envsnap.pipeline.runner import RunResult
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "PIPELINE",
    "CheckError",
    "config_file",
    "load_pipeline_for",
    "recorded_config_files",
    "recorded_inputs",
    "recorded_stages",
    "rerun",
    "stage_entries",
    "stage_mismatch",
    "update_baseline",
    "update_label",
    "who_updates",
]

PIPELINE = "pipeline/pipeline.json"
INPUTS = "data/inputs.json"
CONFIGS = "project/configs.json"


class CheckError(EnvsnapError, ValueError):
    """The baseline cannot serve this check (unreadable, no intermediates, stages that do not match)."""


def recorded_inputs(baseline: Snapshot, *, required: bool = True) -> dict[str, bytes]:
    """Input name -> the baseline's sampled batch as parquet bytes (verified against the manifest).

    ``required=False``: a baseline without inputs (its pipeline's first stage loads its own data) gives {}.
    """
    index = baseline.read_json(INPUTS).get("inputs", {}) if INPUTS in baseline else {}
    out = {name: baseline.read_bytes(entry["parquet"]) for name, entry in index.items() if entry.get("parquet")}
    if not out and (required or index):
        raise CheckError(
            f"{baseline.path}: the baseline holds no recorded inputs",
            hint="make one with `envsnap run --config FILE -o baseline.envsnap`",
        )
    return out


def stage_entries(snap: Snapshot) -> list[dict[str, Any]]:
    """The stages of ``pipeline/pipeline.json``, each with what its record says it returned: ``value_kind`` (the
    value kind, None in records older than format minor 4), ``outputs`` (``[(label, member)]`` present in
    ``snap``: one, one per tuple element, none for kind none or a failure), ``parquet`` (the one output's
    member, else None) and ``imports``."""
    from envsnap.pipeline.records import stage_outputs

    pipeline = snap.read_json(PIPELINE) if PIPELINE in snap else None
    stages = list((pipeline or {}).get("stages") or [])
    for stage in stages:
        record = snap.read_json(stage["record"]) if stage.get("record") and stage["record"] in snap else {}
        value = record["value"] if isinstance(record.get("value"), dict) else {}
        stage["value_kind"] = str(value["kind"]) if value.get("kind") else None
        stage["outputs"] = [(label, m) for label, m in stage_outputs(record) if m and m in snap] if record else []
        stage["parquet"] = stage["outputs"][0][1] if len(stage["outputs"]) == 1 else None
        stage["imports"] = record.get("imports") or []
    return stages


def recorded_stages(baseline: Snapshot) -> list[dict[str, Any]]:
    """The baseline's stages (:func:`stage_entries`); raises when none kept an output."""
    stages = stage_entries(baseline)
    if not any(s["outputs"] for s in stages):
        raise CheckError(
            f"{baseline.path}: the baseline has no stage intermediates (it was captured without running a pipeline)",
            hint="make one with `envsnap run --config FILE -o baseline.envsnap`",
        )
    return stages


def _git_root(cwd: str) -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def recorded_config_files(baseline: Snapshot, cwd: str | None = None) -> tuple[str, ...]:
    """The config files ``baseline`` recorded (``--config-file``), as paths to record again from ``cwd``.

    A file inside the baseline's repository is found by its path in the repository here (so a check run
    from another directory of the clone records the same file); any other by its stored path (relative to
    the working directory, or absolute). A glob the baseline was given is given again when it matches
    here, so that a config file added since shows as added. A file that was missing or unreadable then is
    named again, so that the same error on both sides is no difference.
    """
    import glob

    if CONFIGS not in baseline:
        return ()
    data = baseline.read_json(CONFIGS)
    if not isinstance(data, Mapping) or not isinstance(data.get("files"), list):
        return ()  # the probe failed when the baseline was made: nothing to record again
    here = os.path.realpath(cwd or os.getcwd())
    root = _git_root(here)
    paths: list[str] = []
    for entry in data["files"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            continue
        repo_path = entry.get("repo_path")
        if root is not None and isinstance(repo_path, str):
            paths.append(os.path.join(root, repo_path))
        else:
            paths.append(entry["path"])
    for pattern in data.get("requested") or ():
        if isinstance(pattern, str) and glob.has_magic(pattern) and glob.glob(os.path.join(here, pattern)):
            paths.append(pattern)
    return tuple(dict.fromkeys(paths))


def stage_mismatch(recorded: Sequence[Mapping[str, Any]], pipeline: Pipeline) -> str | None:
    """What changed between the baseline's stages and the pipeline's, or None when they match."""
    old = [str(s["name"]) for s in recorded]
    new = [s.name for s in pipeline.stages]
    if old == new:
        return None
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    targets = {s.name: s.target for s in pipeline.stages}
    renamed = []
    for name in list(removed):
        target = next(str(s.get("call") or s.get("run")) for s in recorded if s["name"] == name)
        match = next((a for a in added if targets[a] == target), None)
        if match is None and len(removed) == len(added) and old.index(name) < len(new):
            candidate = new[old.index(name)]
            match = candidate if candidate in added else None
        if match is not None:
            renamed.append(f"{name} -> {match}")
            removed.remove(name)
            added.remove(match)
    parts = [f"renamed {', '.join(renamed)}"] if renamed else []
    parts += [f"added {', '.join(added)}"] if added else []
    parts += [f"removed {', '.join(removed)}"] if removed else []
    if not parts:
        parts.append(f"reordered: {' > '.join(old)} is now {' > '.join(new)}")
    return "; ".join(parts)


def load_pipeline_for(config: str | os.PathLike[str] | None, pipeline: Pipeline | None, cwd: str | None) -> Pipeline:
    if pipeline is not None:
        return pipeline
    from envsnap.pipeline.config import load_pipeline

    return load_pipeline(config, cwd=cwd)


def config_file(pipeline: Pipeline) -> str | None:
    return pipeline.source if os.path.isfile(pipeline.source) else None


@contextlib.contextmanager
def _input_files(pipeline: Pipeline, baseline: Snapshot) -> Iterator[dict[str, str]]:
    """The baseline's samples as parquet files in a private temporary directory, by input name."""
    samples = recorded_inputs(baseline, required=bool(pipeline.inputs))
    if pipeline.inputs and set(pipeline.inputs) != set(samples):
        raise CheckError(
            f"the pipeline's inputs ({', '.join(sorted(pipeline.inputs))}) are not the baseline's "
            f"({', '.join(sorted(samples))})",
            hint="refresh the baseline with `envsnap baseline update BASELINE --reason ...`",
        )
    with tempfile.TemporaryDirectory(prefix="envsnap-baseline-inputs-") as tmp:
        paths = {}
        for name, data in samples.items():
            path = os.path.join(tmp, f"{name}.parquet")
            with open(path, "wb") as fh:
                fh.write(data)
            paths[name] = path
        yield paths


def rerun(pipeline: Pipeline, baseline: Snapshot, **options: Any) -> RunResult:
    from envsnap.capture.base import SampleOptions
    from envsnap.pipeline.runner import run_pipeline

    # Every recorded row, in order: the stages see exactly what they saw when the baseline was made.
    every_row = SampleOptions(rows=None, fraction=1.0)
    with _input_files(pipeline, baseline) as inputs:
        return run_pipeline(pipeline, inputs=inputs, sampling=every_row, **options)


# --- baseline update --------------------------------------------------------------------------------------


def _git_user(cwd: str | None, environ: Mapping[str, str] | None) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "config", "user.name"],
            cwd=cwd,
            env=dict(environ) if environ is not None else None,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def who_updates(cwd: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The git user name (of the repository at ``cwd``), else ``$USER``, else the login name."""
    env = os.environ if environ is None else environ
    name = _git_user(cwd, environ) or env.get("USER") or env.get("USERNAME")
    if not name:
        import getpass

        with contextlib.suppress(Exception):
            name = getpass.getuser()
    return name or "unknown"


def update_label(reason: str, who: str, when: str, previous: str | None) -> str:
    """``baseline updated WHEN by WHO: REASON (was: PREVIOUS)``."""
    text = f"baseline updated {when} by {who}: {' '.join(reason.split())}"
    return f"{text} (was: {previous})" if previous else text


def update_baseline(
    baseline: str | os.PathLike[str],
    *,
    reason: str,
    config: str | os.PathLike[str] | None = None,
    pipeline: Pipeline | None = None,
    python: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    who: str | None = None,
    git: bool = True,
    cwd: str | None = None,
    config_files: Sequence[str] = (),
) -> Snapshot:
    """Rerun the current pipeline on ``baseline``'s recorded inputs and write the result as the new baseline.

    The new snapshot replaces ``baseline`` atomically (or goes to ``output``); its label records who
    (``who``, default: the git user or ``$USER``), when (UTC) and why (``reason``, required). The stages may
    differ from the old baseline's: that is what an update is for. The config files the old baseline
    recorded (:func:`recorded_config_files`) are recorded again, with ``config_files``. A stage that fails
    raises :class:`CheckError` and nothing is written.
    """
    if not reason or not reason.strip():
        raise CheckError("a baseline update needs a reason", hint='pass --reason "why the outputs changed"')
    from envsnap.snapshot.reader import opened

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with opened(baseline) as base:
        pipe = load_pipeline_for(config, pipeline, cwd)
        label = update_label(reason, who or who_updates(cwd), when, base.label)
        configs = [*recorded_config_files(base, cwd), *config_files]
        result = rerun(pipe, base, python=python, label=label, git=git, cwd=cwd, config_files=configs)
    if not result.ok:
        raise CheckError(
            f"the pipeline did not succeed ({result.error or result.status}); the baseline was not replaced"
        )
    dest = output if output is not None else baseline
    written = result.snapshot.write(dest, force=True)
    result.snapshot.path = str(written)
    return result.snapshot
