"""Replay, check, bisect and shrink with stage values of any shape: polars -> numpy -> dict, params, a source stage.

The pipeline is declared with :class:`envsnap.Pipeline` and recorded in a real venv that has polars and
numpy and nothing else (no pyarrow, no pandas: the runner writes what the libraries can, the host turns it
into parquet). Replays rebuild that venv (and, once, a Docker image) from the snapshot and compare every
output: each tuple element, the dicts' one-row tables, the 2-D array's named columns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import envsnap
from envsnap.pipeline.types import Stage
from tests.integration.conftest import make_venv, pip_install
from tests.integration.replay_env import ENVSNAP, docker_base  # noqa: F401

pytestmark = pytest.mark.slow

#: The versions in the project's own .venv (dev extra), so that pip's cache serves them.
PINS = ("polars==2.2.0", "numpy==2.4.6")

STAGES = '''"""A source stage (polars) -> features (numpy) -> metrics (dict) -> summary (dict); a tuple on the side."""
import numpy as np
import polars as pl


def load(rows=48, seed=7):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"x": rng.normal(size=rows), "y": rng.uniform(size=rows), "g": [i % 3 for i in range(rows)]})


def features(df, scale=2.0):
    return df.select((pl.col("x") * scale).alias("xs"), pl.col("y")).to_numpy()


def metrics(arr, threshold=0.0, offset=0.0):
    return {
        "rows": int(arr.shape[0]),
        "mean_xs": float(arr[:, 0].mean()) + offset,
        "above": int((arr[:, 0] > threshold).sum()),
        "col_means": arr.mean(axis=0).tolist(),
    }


def summary(m, digits=3):
    return {"mean_xs": round(m["mean_xs"], digits), "share_above": round(m["above"] / m["rows"], digits)}


def split(features, at=32):
    return features[:at], features[at:]


def sizes(parts):
    return {"train": int(parts[0].shape[0]), "test": int(parts[1].shape[0])}


def tail(split_1, n=3):
    return split_1[-n:]
'''

NAMES = ["load", "features", "metrics", "summary", "split", "sizes", "tail"]


def pipeline(project: Path, *, offset: float = 0.0, with_tuple: bool = True, at: int = 32) -> envsnap.Pipeline:
    stages = [
        Stage("load", call="valstages:load", params={"rows": 48, "seed": 7}),
        Stage("features", call="valstages:features", params={"scale": 2.0}, columns=("xs", "y")),
        Stage("metrics", call="valstages:metrics", params={"threshold": 0.0, "offset": offset}),
        Stage("summary", call="valstages:summary", params={"digits": 3}),
    ]
    if with_tuple:
        stages += [
            Stage("split", call="valstages:split", inputs=("features",), params={"at": at}),
            Stage("sizes", call="valstages:sizes"),
            Stage("tail", call="valstages:tail", inputs=("split.1",), params={"n": 3}),
        ]
    return envsnap.Pipeline("values", stages=stages, root=str(project), pythonpath=[str(project)])


def git_project(dest: Path, code: str = STAGES) -> Path:
    dest.mkdir(parents=True)
    (dest / "valstages.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for argv in (["git", "init", "-q"], ["git", "add", "valstages.py"], ["git", "commit", "-qm", "p"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def values_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with polars and numpy only (no pyarrow, no pandas)."""
    python = make_venv(tmp_path_factory.mktemp("values-venv") / "venv")
    pip_install(python, *PINS)
    return python


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return git_project(tmp_path_factory.mktemp("values-project") / "proj")


@pytest.fixture(scope="module")
def recorded(project: Path, values_python: Path) -> Path:
    out = project.parent / "values.envsnap"
    result = pipeline(project).run(output=out, python=str(values_python), cwd=str(project), force=True)
    assert result.ok, result.error
    return out


def envsnap_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, check=False)


def replay_json(*args: str | Path) -> tuple[int, dict]:
    proc = envsnap_cli("replay", *args, "--json")
    assert proc.returncode in (0, 1), proc.stderr + proc.stdout
    return proc.returncode, json.loads(proc.stdout)


def by_name(doc: dict) -> dict[str, dict]:
    return {s["name"]: s for s in doc["stages"]}


def test_the_recording_holds_every_kind(recorded: Path) -> None:
    from envsnap.snapshot.reader import opened

    with opened(recorded) as snap:
        kinds = {}
        for name in NAMES:
            index = NAMES.index(name) + 1
            record = snap.read_json(f"pipeline/stages/{index:02d}-{name}.json")
            kinds[name] = record["value"]["kind"]
        assert kinds == {
            "load": "polars",
            "features": "numpy",
            "metrics": "dict",
            "summary": "dict",
            "split": "tuple",
            "sizes": "dict",
            "tail": "numpy",
        }
        assert "pipeline/stages/05-split.0.parquet" in snap and "pipeline/stages/05-split.1.parquet" in snap


def test_venv_replay_reproduces_every_value(recorded: Path) -> None:
    code, doc = replay_json(recorded, "--engine", "venv", "--no-fidelity")
    stages = by_name(doc)
    assert code == 0, doc["stages"]
    assert [s["status"] for s in doc["stages"]] == ["match"] * len(NAMES)
    assert [s["returned"] for s in doc["stages"]] == ["polars", "numpy", "dict", "dict", "tuple", "dict", "numpy"]
    # Every output is compared: the tuple element by element, the dicts as their one-row tables.
    assert [t["name"] for t in stages["split"]["outputs"]] == ["split.0", "split.1"]
    for stage in doc["stages"]:
        assert stage["outputs"] and all(t["status"] in ("identical", "equal") for t in stage["outputs"]), stage


def test_venv_replay_from_a_middle_stage(recorded: Path) -> None:
    # metrics starts from the recorded numpy array; summary from metrics' value when it runs alone.
    code, doc = replay_json(recorded, "--engine", "venv", "--no-fidelity", "--from", "metrics", "--until", "summary")
    assert code == 0, doc["stages"]
    statuses = [s["status"] for s in doc["stages"]]
    assert statuses == ["recorded", "recorded", "match", "match", "skipped", "skipped", "skipped"]
    code, doc = replay_json(recorded, "--engine", "venv", "--no-fidelity", "--stage", "summary")
    assert code == 0, doc["stages"]
    assert by_name(doc)["summary"]["status"] == "match"  # the recorded dict, rebuilt from its JSON
    # A stage that takes one element of a recorded tuple gets it back as the array it was.
    code, doc = replay_json(recorded, "--engine", "venv", "--no-fidelity", "--from", "tail")
    assert code == 0, doc["stages"]
    assert by_name(doc)["tail"]["status"] == "match"


def test_from_after_a_tuple_is_refused_in_one_line(recorded: Path) -> None:
    proc = envsnap_cli("replay", recorded, "--dry-run", "--from", "sizes")
    assert proc.returncode in (2, 3), proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'split'" in proc.stderr and "a tuple" in proc.stderr and "--from 'split'" in proc.stderr
    # A stage after the tuple that does not take it may start there.
    assert envsnap_cli("replay", recorded, "--dry-run", "--from", "split").returncode == 0


def test_another_kind_returned_diverges_naming_both(recorded: Path, project: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(project, edited, ignore=shutil.ignore_patterns(".git"))
    code = (edited / "valstages.py").read_text(encoding="utf-8")
    code = code.replace(
        'return {"mean_xs": round(m["mean_xs"], digits), "share_above": round(m["above"] / m["rows"], digits)}',
        "return np.array([m['mean_xs'], m['above'] / m['rows']])",
    )
    (edited / "valstages.py").write_text(code, encoding="utf-8")
    rc, doc = replay_json(recorded, "--engine", "venv", "--no-fidelity", "--source", edited, "--stage", "summary")
    assert rc == 1
    summary = by_name(doc)["summary"]
    assert summary["status"] == "diverged" and summary["returned"] == "numpy"
    assert "returned numpy, recorded dict" in summary["error"]
    assert doc["first_diverging_stage"] == "summary"
    text = envsnap_cli(
        "replay", recorded, "--engine", "venv", "--no-fidelity", "--source", edited, "--stage", "summary"
    )
    assert "summary" in text.stdout and "returned numpy, recorded dict" in text.stdout


def test_docker_replay_reproduces_every_value(recorded: Path, docker_base: str) -> None:  # noqa: F811
    code, doc = replay_json(recorded, "--base-image", docker_base, "--no-fidelity")
    assert code == 0, doc["stages"]
    assert [s["status"] for s in doc["stages"]] == ["match"] * len(NAMES)
    assert [t["name"] for t in by_name(doc)["split"]["outputs"]] == ["split.0", "split.1"]


# --- check: a dict value against the baseline, within and beyond --atol ------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A baseline recorded in this interpreter (polars and numpy are in the dev extra)."""
    project = git_project(tmp_path_factory.mktemp("values-check") / "proj")
    out = project.parent / "baseline.envsnap"
    result = pipeline(project, with_tuple=False).run(output=out, git=False, cwd=str(project))
    assert result.ok, result.error
    return project, out


def test_check_compares_a_dict_key_by_key_with_atol(baseline: tuple[Path, Path]) -> None:
    from envsnap.check import check

    project, base = baseline
    same = check(base, pipeline=pipeline(project, with_tuple=False), git=False, cwd=str(project))
    assert same.passed, same.verdict
    assert [s.name for s in same.stages] == ["load", "features", "metrics", "summary"]

    nudged = pipeline(project, offset=1e-6, with_tuple=False)
    within = check(base, pipeline=nudged, atol=1e-3, git=False, cwd=str(project))
    assert within.passed, within.verdict
    metrics = next(s for s in within.stages if s.name == "metrics")
    assert metrics.status == "within_tolerance"

    beyond = check(base, pipeline=nudged, atol=1e-9, git=False, cwd=str(project))
    assert not beyond.passed and beyond.first_diverging_stage == "metrics"
    metrics = next(s for s in beyond.stages if s.name == "metrics")
    assert metrics.status == "regressed" and metrics.table is not None
    assert [c.column for c in metrics.table.columns if c.status == "different"] == ["mean_xs"]
    # summary rounds to 3 digits: the nudge does not reach it.
    assert next(s for s in beyond.stages if s.name == "summary").passed


def test_bisect_compares_every_recorded_output(baseline: tuple[Path, Path], tmp_path: Path) -> None:
    from envsnap.bisect.delta import recorded_differences
    from envsnap.snapshot.reader import opened

    project, base = baseline
    other = tmp_path / "other.envsnap"
    assert pipeline(project, offset=0.25, with_tuple=False).run(output=other, git=False, cwd=str(project)).ok
    with opened(base) as good, opened(other) as bad:
        # The nudged metrics dict differs, and so does the summary built from it; the arrays do not.
        assert recorded_differences(good, bad, None, 0.0, 0.0) == ["metrics", "summary"]
        assert recorded_differences(good, bad, None, 0.0, 0.5) == []
        assert recorded_differences(good, bad, "features", 0.0, 0.0) == []


def test_bisect_compares_tuple_elements(recorded: Path, project: Path, values_python: Path, tmp_path: Path) -> None:
    from envsnap.bisect.delta import recorded_differences
    from envsnap.snapshot.reader import opened

    other = tmp_path / "moved.envsnap"
    assert pipeline(project, at=30).run(output=other, python=str(values_python), cwd=str(project)).ok
    with opened(recorded) as good, opened(other) as bad:
        # Both elements moved (and the sizes with them); the last rows of the second did not.
        assert recorded_differences(good, bad, None, 0.0, 0.0) == ["split", "sizes"]


# --- shrink: the rewritten snapshot keeps each output of its stages in its recorded form --------------------

SHRINK_STAGES = '''"""polars rows -> numpy -> a tuple -> a guard that fails on one row."""
import numpy as np
import polars as pl


def features(df):
    return df.select("id", "x").to_numpy().astype("float64")


def halves(arr):
    middle = len(arr) // 2
    return arr[:middle], arr[middle:]


def guard(parts):
    bad = [int(r[0]) for part in parts for r in part if r[1] > 100]
    if bad:
        raise ValueError(f"out of range: {bad}")
    return {"rows": sum(len(p) for p in parts)}
'''


def test_shrink_rewrites_every_output(values_python: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import polars as pl

    from envsnap.shrink import shrink
    from envsnap.snapshot.reader import opened

    project = tmp_path_factory.mktemp("values-shrink") / "proj"
    git_project(project, SHRINK_STAGES)
    pl.DataFrame({"id": list(range(40)), "x": [500.0 if i == 29 else float(i) for i in range(40)]}).write_parquet(
        project / "rows.parquet"
    )
    shrinking = envsnap.Pipeline(
        "shrinking",
        inputs={"rows": str(project / "rows.parquet")},
        accepts="polars",
        stages=[Stage(n, call=f"valstages:{n}") for n in ("features", "halves", "guard")],
        root=str(project),
        pythonpath=[str(project)],
    )
    failing = project.parent / "failing.envsnap"
    result = shrinking.run(output=failing, python=str(values_python), cwd=str(project))
    assert result.status == "failed" and result.failed_stage == "guard"
    report = shrink(failing, engine="venv", chunks=4, output=project.parent / "minimal.envsnap")
    assert report.status == "shrunk" and report.rows_kept == 1, report.message
    with opened(report.output) as snap:
        assert snap.read_json("pipeline/stages/01-features.json")["rows"] == 1
        halves = snap.read_json("pipeline/stages/02-halves.json")["value"]
        # One row: the first half is empty, the second holds the poisoned row; both rewritten with it.
        assert [e["rows"] for e in halves["elements"]] == [0, 1]
        assert [e["value"]["shape"] for e in halves["elements"]] == [[0, 2], [1, 2]]
        assert "pipeline/stages/02-halves.1.parquet" in snap


# --- envsnap.testing: any value against its recorded form ----------------------------------------------------


def test_assert_stage_matches_takes_dicts_arrays_and_tuples(baseline: tuple[Path, Path], recorded: Path) -> None:
    import importlib.util

    from envsnap.testing import assert_stage_matches

    project, base = baseline
    spec = importlib.util.spec_from_file_location("valstages_here", project / "valstages.py")
    assert spec is not None and spec.loader is not None
    stages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stages)
    arr = stages.features(stages.load(rows=48, seed=7), scale=2.0)
    assert_stage_matches(base, "features", arr)  # named columns xs, y, as the stage's columns option says
    metrics = stages.metrics(arr)
    assert_stage_matches(base, "metrics", metrics)
    nudged = dict(metrics, mean_xs=metrics["mean_xs"] + 1e-6)
    assert_stage_matches(base, "metrics", nudged, atol=1e-3)
    with pytest.raises(AssertionError, match="mean_xs"):
        assert_stage_matches(base, "metrics", nudged)
    parts = stages.split(arr, at=32)
    assert_stage_matches(recorded, "split", parts)
    assert_stage_matches(recorded, "split.1", parts[1])
    with pytest.raises(AssertionError, match=r"split\.0, split\.1"):
        assert_stage_matches(recorded, "split", parts[0])


def test_from_after_an_estimator_is_refused_in_one_line(tmp_path: Path) -> None:
    from envsnap.replay.plan import PlanError, build_plan
    from envsnap.snapshot.reader import opened

    fitted = envsnap.Pipeline("fitted", root=str(tmp_path))

    @fitted.stage(params={"rows": 20})
    def frame(rows: int):
        import pandas as pd

        return pd.DataFrame({"a": [float(i) for i in range(rows)], "b": [float(i % 4) for i in range(rows)]})

    @fitted.stage(inputs=["frame"])
    def scaler(frame):
        from sklearn.preprocessing import StandardScaler

        return StandardScaler().fit(frame)

    @fitted.stage(inputs=["scaler", "frame"])
    def scaled(scaler, frame):
        return scaler.transform(frame)

    out = tmp_path / "fitted.envsnap"
    result = fitted.run(output=out, git=False, cwd=str(tmp_path))
    assert result.ok, result.error
    with opened(out) as snap:
        record = snap.read_json("pipeline/stages/02-scaler.json")
        assert record["value"]["kind"] == "estimator"
        with pytest.raises(PlanError) as caught:
            build_plan(snap, from_stage="scaled")
        assert "'scaler' before it returned a fitted estimator" in str(caught.value)
        assert "--from 'scaler'" in str(caught.value)
        assert build_plan(snap, from_stage="scaler").stages[0].action == "recorded"
