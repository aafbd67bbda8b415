"""Key-level diffs of configs and lockfiles: from real files through the probes to every renderer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from envsnap.capture import capture, target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.configs import ConfigsProbe
from envsnap.diff import diff
from envsnap.diff.env_configs import diff_configs, diff_lockfiles
from envsnap.diff.model import Change
from envsnap.diff.render import render

SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"
KEY_ENV = {"ENVSNAP_REDACTION_KEY": "diff-test-key", "HOME": "/nonexistent"}

GOOD = """\
model:
  normalize: true
  threshold: 0.5
  features: [age, income, tenure]
  drop_na: "false"
  layers: [{units: 8}, {units: 4}]
db:
  host: db.internal
  password: first-secret
"""
BAD = """\
model:
  normalize: false
  features: [age, tenure, income, region]
  drop_na: false
  layers: [{units: 8}, {units: 2}, {units: 1}]
db:
  host: db.internal
  password: first-secret
"""


def _configs(directory: Path, files: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    options = CaptureOptions(git=False, cwd=str(directory), config_files=tuple(files), environ=environ or KEY_ENV)
    out = ConfigsProbe().collect(CaptureContext(options, target.in_process))
    assert isinstance(out, ProbeOutput)
    data: dict[str, Any] = json.loads(json.dumps(out.data))  # as a reader sees it
    return data


def _changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Change]:
    section = diff_configs(a, b)
    return {c.key: c for c in section.changes}


def test_flipped_boolean_and_dropped_key_are_named_with_their_paths(tmp_path: Path) -> None:
    a = _configs(tmp_path / "a", {"conf/app.yaml": GOOD})
    b = _configs(tmp_path / "b", {"conf/app.yaml": BAD})
    changes = _changes(a, b)
    flipped = changes["conf/app.yaml:model.normalize"]
    assert (flipped.kind, flipped.before, flipped.after) == ("changed", True, False)
    dropped = changes["conf/app.yaml:model.threshold"]
    assert (dropped.kind, dropped.before, dropped.after) == ("removed", 0.5, None)
    retyped = changes["conf/app.yaml:model.drop_na"]
    assert retyped.note == 'type string → boolean: "false" → false'
    features = changes["conf/app.yaml:model.features"]
    assert features.note == "list: added: region; moved: tenure"
    assert changes["conf/app.yaml:model.layers[1].units"].after == 2
    assert changes["conf/app.yaml:model.layers[2]"].kind == "added"
    assert "conf/app.yaml:db.password" not in changes  # same secret, same digest
    assert "conf/app.yaml:db.host" not in changes


def test_redacted_values_compare_by_digest_under_the_same_key(tmp_path: Path) -> None:
    a = _configs(tmp_path / "a", {"app.yaml": "api_key: one-secret\n"})
    b = _configs(tmp_path / "b", {"app.yaml": "api_key: two-secret\n"})
    change = _changes(a, b)["app.yaml:api_key"]
    assert change.redacted and change.value_changed is True and change.before is None and change.after is None
    other_key = {"ENVSNAP_REDACTION_KEY": "somebody-else", "HOME": "/nonexistent"}
    c = _configs(tmp_path / "c", {"app.yaml": "api_key: one-secret\n"}, environ=other_key)
    undecided = _changes(a, c)["app.yaml:api_key"]
    assert undecided.value_changed is None and undecided.note.startswith("cannot tell: different redaction keys")


def test_files_added_removed_and_unreadable(tmp_path: Path) -> None:
    a = _configs(tmp_path / "a", {"one.json": '{"x": 1}', "two.toml": "y = 2\n"})
    b = _configs(tmp_path / "b", {"one.json": '{"x": ', "three.ini": "[s]\nk = v\n"})
    changes = _changes(a, b)
    assert changes["two.toml"].kind == "removed" and changes["three.ini"].kind == "added"
    assert changes["one.json"].before == "read" and changes["one.json"].after.startswith("one.json: not valid JSON")


def test_lockfile_pins_content_and_disagreements() -> None:
    def lock(pins: dict[str, str], sha: str, drift: list[dict[str, str]]) -> dict[str, Any]:
        entry = {"path": "uv.lock", "kind": "uv.lock", "pins": pins, "requirements": {}, "sha256": sha, "error": None}
        return {"files": [entry], "disagreements": drift}

    numpy = {"file": "uv.lock", "name": "numpy", "pinned": "1.26.4", "installed": "2.2.6",
             "message": "uv.lock pins numpy 1.26.4; the job ran 2.2.6"}  # fmt: skip
    section = diff_lockfiles(lock({"numpy": "1.26.4"}, "a" * 64, []), lock({"numpy": "1.26.4"}, "b" * 64, [numpy]))
    changes = {c.key: c for c in section.changes}
    assert changes["uv.lock"].note == "content changed; same pins"
    assert changes["uv.lock:numpy (installed)"].kind == "added"
    assert changes["uv.lock:numpy (installed)"].note == "uv.lock pins numpy 1.26.4; the job ran 2.2.6"
    same = diff_lockfiles(lock({"numpy": "1.26.4"}, "a" * 64, [numpy]), lock({"numpy": "1.26.4"}, "a" * 64, [numpy]))
    assert same.changes == () and "uv.lock pins numpy 1.26.4; the job ran 2.2.6" in (same.note or "")
    bumped = diff_lockfiles(
        lock({"numpy": "1.26.4"}, "a" * 64, []), lock({"numpy": "2.2.6", "six": "1.16.0"}, "c" * 64, [])
    )
    assert {(c.key, c.kind, c.before, c.after) for c in bumped.changes} == {
        ("uv.lock:numpy", "changed", "1.26.4", "2.2.6"),
        ("uv.lock:six", "added", None, "1.16.0"),
    }


def test_snapshot_diff_ranks_the_normalization_key_and_renders_everywhere(tmp_path: Path) -> None:
    snaps = []
    for name, text in (("a", GOOD), ("b", BAD)):
        work = tmp_path / name
        (work / "conf").mkdir(parents=True)
        (work / "conf" / "app.yaml").write_text(text)
        (work / "uv.lock").write_text('version = 1\n[[package]]\nname = "pytest"\nversion = "0.0.1"\n')
        snaps.append(capture(cwd=work, git=False, config_files=["conf/app.yaml"], reproducible=True))
    result = diff(snaps[0], snaps[1])
    configs = result.env.section("configs")
    assert configs is not None and {c.key for c in configs.changes} >= {
        "conf/app.yaml:model.normalize",
        "conf/app.yaml:model.threshold",
    }
    lockfiles = result.env.section("lockfiles")
    assert lockfiles is not None and lockfiles.changes == ()
    assert any("uv.lock pins pytest 0.0.1; the job ran" in n for n in result.notes)
    top = [s for s in result.suspects if s.kind == "configs"][:3]
    assert {s.subject for s in top} <= {
        "config conf/app.yaml:model.normalize",
        "config conf/app.yaml:model.threshold",
        "config conf/app.yaml:model.features",
        "config conf/app.yaml:model.drop_na",
    }
    assert "normalization/features/thresholds/schema" in top[0].reason
    document = json.loads(render(result, "json"))
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    for fmt in ("text", "markdown", "html"):
        assert "model.normalize" in render(result, fmt)
