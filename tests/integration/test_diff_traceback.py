"""Traceback-aware ranking on a real upgrade: scikit-learn 1.5.2 → 1.6.1 with numpy and pandas bumped beside it.

The job calls ``mean_squared_error(..., squared=False)``: deprecated in 1.4, removed in 1.6, so under 1.6.1
it fails with ``TypeError`` raised through ``sklearn/utils/_param_validation.py``. numpy's step (1 → 2) is
the biggest and numpy is "numeric core"; the traceback says it is scikit-learn, and the diff must say so
too. Both runs are ``envsnap run -- python job.py`` in two real venvs (built once per session), and the
job record's frames carry the distribution of each library frame.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import make_venv, pip_install

ENVSNAP = [sys.executable, "-m", "envsnap"]

JOB = textwrap.dedent(
    """\
    import numpy as np
    import pandas as pd
    from sklearn.metrics import mean_squared_error


    def main():
        frame = pd.DataFrame({"y": [1.0, 2.0, 3.0], "p": [1.1, 1.9, 3.2]})
        rmse = mean_squared_error(frame["y"].to_numpy(), np.asarray(frame["p"]), squared=False)
        print("rmse", rmse)


    if __name__ == "__main__":
        main()
    """
)

# pyarrow (the same on both sides) lets the stage runner hand the pipeline's inputs over.
PINS = {
    "good": ("scikit-learn==1.5.2", "numpy==1.26.4", "pandas==2.2.3", "pyarrow==20.0.0"),
    "bad": ("scikit-learn==1.6.1", "numpy==2.2.6", "pandas==2.3.3", "pyarrow==20.0.0"),
}

STAGES = textwrap.dedent(
    """    from sklearn.metrics import mean_squared_error


    def score(frame):
        rmse = mean_squared_error(frame["y"], frame["p"], squared=False)
        return frame.assign(rmse=rmse)
    """
)


@pytest.fixture(scope="session")
def sklearn_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "sklearn-venvs"
    pythons = {}
    for side, pins in PINS.items():
        python = root / side / "bin" / "python"
        if not python.exists():
            make_venv(root / side)
            pip_install(python, *pins)
        pythons[side] = python
    return pythons


def _envsnap(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENVSNAP, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_sklearn_is_the_top_suspect_when_the_traceback_runs_through_it(
    tmp_path: Path, sklearn_venvs: dict[str, Path]
) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.py").write_text(JOB)
    for side, python in sklearn_venvs.items():
        run = _envsnap("run", "-o", tmp_path / f"{side}.envsnap", "--", python, "job.py", cwd=job)
        assert run.returncode == (0 if side == "good" else 1), run.stderr
    good, bad = tmp_path / "good.envsnap", tmp_path / "bad.envsnap"

    result = _envsnap("diff", good, bad, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    top = doc["suspects"][0]
    assert top["subject"] == "scikit-learn"
    assert top["evidence"] == "traceback"
    assert "the failure's traceback runs through sklearn/utils/_param_validation.py" in top["reason"]
    assert round(sum(t["points"] for t in top["terms"]), 2) == top["score"]
    subjects = [s["subject"] for s in doc["suspects"]]
    assert subjects.index("numpy") > 0 and subjects.index("pandas") > 0
    # numpy's vendored OpenBLAS and its BLAS build fold into the numpy row.
    assert not any(s.startswith(("lib:openblas", "numpy.blas", "numpy.lapack")) for s in subjects)
    numpy = next(s for s in doc["suspects"] if s["subject"] == "numpy")
    assert "and its bundled libopenblas" in numpy["reason"]
    # The outcome row and the verdict.
    job_section = next(s for s in doc["env"]["sections"] if s["name"] == "job")
    [row] = job_section["changes"]
    assert row["key"] == "outcome" and row["before"] == "exit 0"
    assert row["after"] == "TypeError at job.py:8 in main (exit 1)"
    assert doc["verdict"].startswith("the job fails in b: TypeError at job.py:8 in main (exit 1); a: exit 0")

    text = _envsnap("diff", good, bad, cwd=tmp_path)
    assert "Job: the job fails in b: TypeError at job.py:8 in main (exit 1)" in text.stdout
    assert "1. scikit-learn — scikit-learn 1.5.2 → 1.6.1: minor; the failure's traceback runs" in text.stdout


def test_a_failed_stage_traceback_text_ranks_sklearn_first(tmp_path: Path, sklearn_venvs: dict[str, Path]) -> None:
    """A pipeline stage keeps only the traceback text: its site-packages path maps to scikit-learn through
    the ``top_level`` names the packages probe recorded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    project = tmp_path / "project"
    project.mkdir()
    (project / "stages.py").write_text(STAGES)
    (project / "envsnap.toml").write_text(
        '[pipeline]\nname = "metrics"\ninputs = {scores = "scores.parquet"}\n\n'
        '[[pipeline.stages]]\nname = "score"\ncall = "stages:score"\n'
    )
    pq.write_table(pa.table({"y": [1.0, 2.0, 3.0], "p": [1.1, 1.9, 3.2]}), project / "scores.parquet")
    for side, python in sklearn_venvs.items():
        run = _envsnap(
            "run", "-c", "envsnap.toml", "--python", python, "-o", tmp_path / f"{side}.envsnap", "--no-git", cwd=project
        )
        assert run.returncode == (0 if side == "good" else 1), run.stderr
    result = _envsnap("diff", tmp_path / "good.envsnap", tmp_path / "bad.envsnap", "--json", cwd=tmp_path)
    doc = json.loads(result.stdout)
    assert doc["data"]["first_diverging_stage"] == "score"
    top = doc["suspects"][0]
    assert (top["subject"], top["evidence"]) == ("scikit-learn", "traceback")
    assert "the failure's traceback runs through sklearn/utils/_param_validation.py" in top["reason"]
    [row] = next(s for s in doc["env"]["sections"] if s["name"] == "job")["changes"]
    assert row["after"].startswith("TypeError in stage `score` at stages.py:5 in score")
