"""Pipeline definitions: envsnap.toml, [tool.envsnap] in pyproject.toml, and Python; errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsnap.pipeline import Pipeline, PipelineError, Stage, load_pipeline

TOML = """
[pipeline]
name = "churn"
inputs = {events = "data/events.parquet"}
pythonpath = ["src"]

[[pipeline.stages]]
name = "clean"
call = "churn.clean:run"

[[pipeline.stages]]
name = "score"
run = "python score.py {input} {output}"
accepts = "arrow"
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_envsnap_toml_is_loaded_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = _write(tmp_path / "proj" / "envsnap.toml", TOML)
    pipeline = load_pipeline(config)
    assert pipeline.name == "churn"
    assert pipeline.inputs == {"events": str(tmp_path / "proj" / "data" / "events.parquet")}
    assert pipeline.pythonpath == [str((tmp_path / "proj" / "src").resolve())]
    assert pipeline.root == str(tmp_path / "proj")
    assert pipeline.accepts == "pandas"
    assert [(s.name, s.kind, s.target, s.accepts) for s in pipeline.stages] == [
        ("clean", "call", "churn.clean:run", None),
        ("score", "run", "python score.py {input} {output}", "arrow"),
    ]
    assert pipeline.source == str(config)


def test_an_s3_input_stays_a_uri(tmp_path: Path) -> None:
    text = TOML.replace('"data/events.parquet"', '"s3://lake/events/"')
    pipeline = load_pipeline(_write(tmp_path / "proj" / "envsnap.toml", text))
    assert pipeline.inputs == {"events": "s3://lake/events/"}


def test_pyproject_tool_envsnap_has_the_same_shape(tmp_path: Path) -> None:
    body = TOML.replace("[pipeline]", "[tool.envsnap.pipeline]").replace(
        "[[pipeline.stages]]", "[[tool.envsnap.pipeline.stages]]"
    )
    _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n' + body)
    pipeline = load_pipeline(tmp_path / "pyproject.toml")
    assert [s.name for s in pipeline.stages] == ["clean", "score"]


def test_discovery_walks_up_and_prefers_envsnap_toml(tmp_path: Path) -> None:
    _write(tmp_path / "envsnap.toml", TOML)
    _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert load_pipeline(cwd=deep).source == str(tmp_path / "envsnap.toml")


def test_discovery_skips_a_pyproject_without_tool_envsnap(tmp_path: Path) -> None:
    _write(tmp_path / "envsnap.toml", TOML)
    _write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "sub"\n')
    assert load_pipeline(cwd=tmp_path / "sub").name == "churn"


def test_no_config_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"no pipeline found.*--config") as info:
        load_pipeline(cwd=tmp_path)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[pipeline\n", None, "not valid TOML"),
        ("[other]\nx = 1\n", None, "has no [pipeline] table"),
        ('[pipeline]\nname = "p"\n', "pipeline.stages", "declares no stages"),
        ('[pipeline]\nname = "p"\nstgaes = []\n', "pipeline.stgaes", "unknown key 'stgaes'"),
        ('[pipeline]\nname = 3\n[[pipeline.stages]]\nname="a"\ncall="m:f"\n', "pipeline.name", "must be a string"),
        ('[pipeline]\ninputs = ["a"]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\n', "pipeline.inputs", "table"),
        ('[pipeline]\n[[pipeline.stages]]\ncall="m:f"\n', "pipeline.stages[0].name", "needs a name"),
        (
            '[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\nrun="x {output}"\n',
            "pipeline.stages[0]",
            "exactly one of 'call' or 'run'",
        ),
        ('[pipeline]\n[[pipeline.stages]]\nname="a"\n', "pipeline.stages[0]", "got neither"),
        (
            '[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m.f"\n',
            "pipeline.stages[0].call",
            "package.module:function",
        ),
        ('[pipeline]\n[[pipeline.stages]]\nname="a"\nrun="x {input}"\n', "pipeline.stages[0].run", "{output}"),
        ('[pipeline]\n[[pipeline.stages]]\nname="a b"\ncall="m:f"\n', "pipeline.stages[0]", "letters, digits"),
        ('[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\ncal="x"\n', "pipeline.stages[0].cal", "unknown key"),
        (
            '[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\n[[pipeline.stages]]\nname="a"\ncall="m:g"\n',
            "pipeline.stages[1]",
            "two stages are named 'a'",
        ),
        (
            '[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\naccepts="xarray"\n',
            "accepts",
            "pandas, arrow, polars",
        ),
        (
            '[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\nparams={bad-name=1}\n',
            "pipeline.stages[0].params",
            "param 'bad-name' is not a Python name",
        ),
        ('[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\nparams=3\n', "pipeline.stages[0].params", "table"),
        ('[pipeline]\n[[pipeline.stages]]\nname="a"\ncall="m:f"\ninputs="x"\n', "pipeline.stages[0].inputs", "list"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path: Path, text: str, key: str | None, problem: str) -> None:
    config = _write(tmp_path / "envsnap.toml", text)
    with pytest.raises(PipelineError) as info:
        load_pipeline(config)
    message = str(info.value)
    assert message.startswith(str(config)), message
    assert problem in message, message
    if key is not None:
        assert f": {key}" in message, message


def test_pyproject_keys_are_named_under_tool_envsnap(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "pyproject.toml", '[tool.envsnap.pipeline]\n[[tool.envsnap.pipeline.stages]]\nname="a"\n'
    )
    with pytest.raises(PipelineError, match=r"tool\.envsnap\.pipeline\.stages\[0\]"):
        load_pipeline(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no such config file"):
        load_pipeline(tmp_path / "nope.toml")


def test_python_declaration_with_the_decorator() -> None:
    pipeline = Pipeline("churn", inputs={"events": "e.parquet"})

    @pipeline.stage()
    def clean(frame: object) -> object:
        return frame

    @pipeline.stage(name="score-it", accepts="arrow")
    def score(table: object) -> object:
        return table

    @pipeline.stage
    def _tidy(frame: object) -> object:
        return frame

    assert clean(1) == 1, "the decorator returns the function unchanged"
    assert [(s.name, s.kind, s.accepts) for s in pipeline.stages] == [
        ("clean", "call", None),
        ("score-it", "call", "arrow"),
        ("tidy", "call", None),
    ]
    assert pipeline.stages[0].target.endswith(":test_python_declaration_with_the_decorator.<locals>.clean")
    assert pipeline.to_dict()["stages"][1] == {
        "name": "score-it",
        "kind": "call",
        "call": pipeline.stages[1].target,
        "inputs": None,
        "accepts": "arrow",
    }


def test_stage_inputs_must_be_known_and_several_inputs_must_be_declared() -> None:
    pipeline = Pipeline("p", stages=[Stage("first", call="m:f"), Stage("second", call="m:g", inputs=["nope"])])
    with pytest.raises(PipelineError, match="must say which inputs it takes: the pipeline has 2"):
        pipeline.check_inputs(["a", "b"])
    with pytest.raises(PipelineError, match=r"takes 'nope', which is neither an input nor an earlier stage"):
        pipeline.check_inputs(["a"])
    # No inputs at all: the first stage is a source stage that loads its own data.
    Pipeline("p", stages=[Stage("load", call="m:f", params={"n": 3})]).check_inputs([])
    ok = Pipeline("p", stages=[Stage("j", call="m:f", inputs=("a", "b")), Stage("k", call="m:g", inputs=("j", "a"))])
    ok.check_inputs(["a", "b"])


def test_a_stage_needs_exactly_one_body() -> None:
    with pytest.raises(PipelineError, match="exactly one of"):
        Pipeline("p", stages=[Stage("a", call="m:f", run="x {output}")])
    with pytest.raises(PipelineError, match="pipeline name"):
        Pipeline("bad name")
