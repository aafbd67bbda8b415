"""The check's building blocks: the [check] config, the tolerant compare, stage matching, the update label."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.check.baseline import stage_mismatch, update_label, who_updates
from envsnap.check.tolerance import CheckConfigError, Tolerance, compare_intermediate, load_check_config
from envsnap.pipeline.model import Pipeline, Stage

CONFIG = """
[pipeline]
name = "p"
[[pipeline.stages]]
name = "a"
call = "m:f"

[check]
rtol = 1e-9
ignore_columns = ["run_id"]

[check.tolerances.features]
atol = 0.5
ignore_columns = ["debug"]
ignore_added_columns = true
columns = { score = { rtol = 1e-3 }, age = { atol = 2 } }
"""


def parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def write(tmp_path: Path, text: str, name: str = "envsnap.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_stage_and_column_settings_resolve_over_the_defaults(tmp_path: Path) -> None:
    config = load_check_config(write(tmp_path, CONFIG))
    features = config.tolerance("features")
    assert (features.rtol, features.atol) == (1e-9, 0.5)
    assert features.for_column("score") == (1e-3, 0.5)
    assert features.for_column("age") == (1e-9, 2.0)
    assert features.for_column("other") == (1e-9, 0.5)
    assert features.ignore_columns == ("run_id", "debug")
    assert features.ignore_added_columns
    other = config.tolerance("clean")
    assert (other.rtol, other.atol, other.ignore_columns, other.ignore_added_columns) == (1e-9, 0.0, ("run_id",), False)


def test_command_line_overrides_replace_defaults_but_not_stage_settings(tmp_path: Path) -> None:
    config = load_check_config(write(tmp_path, CONFIG)).with_overrides(rtol=0.01, atol=0.02)
    assert (config.tolerance("clean").rtol, config.tolerance("clean").atol) == (0.01, 0.02)
    assert (config.tolerance("features").rtol, config.tolerance("features").atol) == (0.01, 0.5)


def test_pyproject_check_table_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "[tool.envsnap.check]\natol = 0.25\n", name="pyproject.toml")
    assert load_check_config(path).tolerance("x").atol == 0.25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[check]\nrtol = -1\n", "check.rtol: must be a number >= 0"),
        ("[check]\nrtol = true\n", "check.rtol: must be a number >= 0"),
        ("[check]\ntolerance = 1\n", "check.tolerance: unknown key"),
        ("[check.tolerances.s]\ncolumns = { c = { rel = 1 } }\n", "check.tolerances.s.columns.c.rel: unknown key"),
        ("[check.tolerances.s]\nignore_columns = 'c'\n", "ignore_columns: must be a list of column names"),
        ("[check]\nignore_added_columns = 1\n", "ignore_added_columns: must be true or false"),
    ],
)
def test_a_malformed_check_table_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CheckConfigError) as info:
        load_check_config(path)
    assert message in str(info.value) and path in str(info.value)


def test_tolerances_for_an_unknown_stage_are_refused(tmp_path: Path) -> None:
    config = load_check_config(write(tmp_path, CONFIG))
    with pytest.raises(CheckConfigError, match="no stage 'features'"):
        config.check_stages(["clean", "score"])
    config.check_stages(["clean", "features"])


def test_equal_bytes_are_identical_without_decoding() -> None:
    data = parquet(pa.table({"x": [1.0, 2.0]}))
    assert compare_intermediate(data, data, name="s", tolerance=Tolerance()).status == "identical"


def test_per_column_tolerance_applies_to_that_column_only() -> None:
    a = pa.table({"x": [1.0, 2.0, 3.0], "y": [10.0, 20.0, 30.0]})
    b = pa.table({"x": [1.0, 2.0, 3.001], "y": [10.0, 20.0, 30.001]})
    loose_x = Tolerance(columns={"x": (1e-3, 0.0)})
    table = compare_intermediate(parquet(a), parquet(b), name="s", tolerance=loose_x)
    assert table.status == "different"
    assert {c.column: c.status for c in table.columns} == {"x": "within_tolerance", "y": "different"}
    assert [row["position"] for row in table.sample_rows] == [2]
    assert table.sample_rows[0]["b"]["y"] == 30.001
    both = Tolerance(rtol=1e-3)
    assert compare_intermediate(parquet(a), parquet(b), name="s", tolerance=both).status == "within_tolerance"


def test_ignored_and_added_columns() -> None:
    a = pa.table({"x": [1, 2], "run_id": ["r1", "r1"]})
    b = pa.table({"x": [1, 2], "run_id": ["r2", "r2"], "debug": [0.5, 0.7]})
    strict = compare_intermediate(parquet(a), parquet(b), name="s", tolerance=Tolerance())
    assert strict.status == "different"
    assert [(c.column, c.kind) for c in strict.schema] == [("debug", "added")]
    relaxed = Tolerance(ignore_columns=("run_id",), ignore_added_columns=True)
    table = compare_intermediate(parquet(a), parquet(b), name="s", tolerance=relaxed)
    assert table.status == "equal"
    assert table.note == "ignored columns: run_id, debug"


def test_fewer_rows_is_different_whatever_the_tolerance() -> None:
    a = pa.table({"x": [1.0, 2.0, 3.0]})
    b = pa.table({"x": [1.0, 2.0]})
    table = compare_intermediate(parquet(a), b, name="s", tolerance=Tolerance(rtol=1.0, atol=1.0))
    assert table.status == "different" and table.rows == (3, 2)
    assert table.note is not None and table.note.startswith("row counts differ: 3 vs 2")


def _pipeline(*stages: tuple[str, str]) -> Pipeline:
    return Pipeline("p", stages=[Stage(name=n, call=c) for n, c in stages])


def test_stage_mismatch_names_renamed_added_removed_and_reordered() -> None:
    recorded = [{"name": "a", "call": "m:a"}, {"name": "b", "call": "m:b"}, {"name": "c", "call": "m:c"}]
    assert stage_mismatch(recorded, _pipeline(("a", "m:a"), ("b", "m:b"), ("c", "m:c"))) is None
    assert stage_mismatch(recorded, _pipeline(("a", "m:a"), ("bee", "m:b"), ("c", "m:c"))) == "renamed b -> bee"
    assert stage_mismatch(recorded, _pipeline(("a", "m:a"), ("c", "m:c"))) == "removed b"
    assert stage_mismatch(recorded, _pipeline(("a", "m:a"), ("b", "m:b"), ("c", "m:c"), ("d", "m:d"))) == "added d"
    assert stage_mismatch(recorded, _pipeline(("b", "m:b"), ("a", "m:a"), ("c", "m:c"))) == (
        "reordered: a > b > c is now b > a > c"
    )


def test_update_label_and_who(tmp_path: Path) -> None:
    label = update_label("numpy 2  upgrade\n(approved)", "Ada", "2030-01-02T03:04:05Z", "nightly")
    assert label == "baseline updated 2030-01-02T03:04:05Z by Ada: numpy 2 upgrade (approved) (was: nightly)"
    # No git identity anywhere (not a repository, no global or system config): $USER says who.
    bare = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    assert who_updates(cwd=str(tmp_path), environ={**bare, "USER": "ci-runner"}) == "ci-runner"
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, env=bare, check=True)
    subprocess.run(["git", "config", "user.name", "Grace Hopper"], cwd=tmp_path, env=bare, check=True)
    assert who_updates(cwd=str(tmp_path), environ={**bare, "USER": "ci-runner"}) == "Grace Hopper"
