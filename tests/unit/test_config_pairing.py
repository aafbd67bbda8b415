"""Config files paired across names: ``--config-map A=B`` and pairing by role (most keys in common)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from envsnap.cli import app
from envsnap.diff.config_pairing import leaf_keys, pair_config_files, parse_config_map
from envsnap.errors import OptionError

SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"
runner = CliRunner()

DEV = """\
model:
  lr: 0.001
  normalize: true
  features: [age, income, tenure]
data:
  path: data/train.parquet
  batch_size: 256
serving:
  replicas: 1
"""
PROD = """\
model:
  lr: 0.01
  normalize: false
  features: [age, income, tenure]
data:
  path: s3://bucket/train.parquet
  batch_size: 256
serving:
  replicas: 4
  autoscale: true
"""
LOGGING = """\
handlers: [console]
level: INFO
"""


def _capture(monkeypatch: pytest.MonkeyPatch, work: Path, files: dict[str, str], out: Path) -> Path:
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).write_text(text)
    monkeypatch.chdir(work)
    args = ["capture", "--no-git", "--reproducible", "-o", str(out)]
    for name in files:
        args += ["--config-file", name]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def dev_prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    a = _capture(monkeypatch, tmp_path / "a", {"config.yaml": DEV, "logging.yaml": LOGGING}, tmp_path / "a.envsnap")
    b = _capture(monkeypatch, tmp_path / "b", {"config-prod.yaml": PROD}, tmp_path / "b.envsnap")
    monkeypatch.chdir(tmp_path)
    return a, b


def _configs(document: dict[str, object]) -> dict[str, dict[str, object]]:
    sections = document["env"]["sections"]  # type: ignore[index]
    configs = next(s for s in sections if s["name"] == "configs")  # type: ignore[union-attr]
    return {c["key"]: c for c in configs["changes"]} | {"": {"note": configs["note"]}}


def test_renamed_config_pairs_by_role_and_diffs_key_by_key(dev_prod: tuple[Path, Path]) -> None:
    a, b = dev_prod
    result = runner.invoke(app, ["diff", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # the suspects' fields are another part's contract, checked by its own tests
    jsonschema.validate({**document, "suspects": []}, json.loads(SCHEMA.read_text(encoding="utf-8")))
    changes = _configs(document)
    pair = "config.yaml → config-prod.yaml"
    assert changes[f"{pair}:model.lr"]["before"] == 0.001
    assert changes[f"{pair}:model.lr"]["after"] == 0.01
    assert changes[f"{pair}:model.normalize"]["after"] is False
    assert changes[f"{pair}:serving.replicas"]["after"] == 4
    assert changes[f"{pair}:serving.autoscale"]["kind"] == "added"
    assert f"{pair}:model.features" not in changes  # same list: no change
    assert changes["logging.yaml"]["kind"] == "removed"  # nothing of b's shares its keys
    assert "config-prod.yaml" not in changes  # not an added file: it is paired
    note = str(changes[""]["note"])
    assert "config.yaml ↔ config-prod.yaml (paired by role: 6 of 7 keys in common)" in note
    text = runner.invoke(app, ["diff", str(a), str(b)]).stdout
    assert f"{pair}:model.lr" in text
    suspects = [s["subject"] for s in document["suspects"]]
    assert f"config {pair}:model.normalize" in suspects


def test_config_map_pairs_files_with_few_keys_in_common(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dev_prod: tuple[Path, Path]
) -> None:
    a, b = dev_prod
    plain = json.loads(runner.invoke(app, ["diff", str(a), str(b), "--json"]).stdout)
    assert _configs(plain)["logging.yaml"]["kind"] == "removed"
    result = runner.invoke(app, ["diff", str(a), str(b), "--json", "--config-map", "logging.yaml=config-prod.yaml"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["options"]["config_map"] == {"logging.yaml": "config-prod.yaml"}
    changes = _configs(document)
    pair = "logging.yaml → config-prod.yaml"
    assert changes[f"{pair}:level"]["kind"] == "removed"
    assert changes[f"{pair}:model"]["kind"] == "added"
    assert changes["config.yaml"]["kind"] == "removed"  # its partner was taken by the map
    assert "(paired by --config-map)" in str(changes[""]["note"])


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ("config.yaml", "expected A=B"),
        ("=config-prod.yaml", "expected A=B"),
        ("nope.yaml=config-prod.yaml", "a has no config file 'nope.yaml' (its config files: config.yaml, logging"),
        ("config.yaml=nope.yaml", "b has no config file 'nope.yaml' (its config files: config-prod.yaml)"),
    ],
)
def test_bad_config_map_is_one_line_usage_error(dev_prod: tuple[Path, Path], mapping: str, expected: str) -> None:
    a, b = dev_prod
    result = runner.invoke(app, ["diff", str(a), str(b), "--config-map", mapping])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0], lines


def test_config_map_needs_two_snapshots(dev_prod: tuple[Path, Path]) -> None:
    a, _ = dev_prod
    result = runner.invoke(app, ["diff", str(a), "--current", "--config-map", "a=b"])
    assert result.exit_code == 2
    assert "--config-map pairs the config files of two snapshots" in result.stderr


def _entry(path: str, data: object, fmt: str = "yaml", error: str | None = None) -> dict[str, object]:
    return {"path": path, "format": fmt, "data": data, "error": error, "redacted": {}}


def test_pairing_rules() -> None:
    tree = {"a": 1, "b": {"c": [1, 2], "d": {}}, "e.f": 2}
    assert leaf_keys(tree) == {"a", "b.c", "b.d", '["e.f"]'}
    a = {"x.yaml": _entry("x.yaml", {"k": 1, "j": 2}), "bad.yaml": _entry("bad.yaml", None, error="bad")}
    b = {"x.json": _entry("x.json", {"k": 1, "j": 2}, fmt="json"), "other.yaml": _entry("other.yaml", {"k": 2})}
    pairs, removed, added = pair_config_files(a, b)
    assert pairs == []  # other format; half the keys is not most of them; an unreadable file never pairs
    assert removed == ["bad.yaml", "x.yaml"] and added == ["other.yaml", "x.json"]
    b["y.yaml"] = _entry("y.yaml", {"k": 1, "j": 3, "i": 0})
    pairs, removed, added = pair_config_files(a, b)
    expected = [("x.yaml", "y.yaml", "paired by role: 2 of 3 keys in common")]
    assert [(p.path_a, p.path_b, p.how) for p in pairs] == expected
    pairs, _, _ = pair_config_files(a, b, {"x.yaml": "x.json"})
    assert [(p.key, p.how) for p in pairs] == [("x.yaml → x.json", "paired by --config-map")]


def test_parse_config_map_refuses_a_file_twice() -> None:
    assert parse_config_map(["a.yaml = b.yaml"]) == {"a.yaml": "b.yaml"}
    with pytest.raises(OptionError, match="mapped once"):
        parse_config_map(["a.yaml=b.yaml", "c.yaml=b.yaml"])
