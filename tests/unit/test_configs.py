"""The configs probe on real files: every format parsed, secrets redacted by key name and by value (with
keyed digests), raw copies only when clean, and each bad file one error line while capture goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions, ProbeOutput
from envsnap.capture.config_parsers import is_secret_key, parse_config, redact_tree
from envsnap.capture.configs import ConfigsProbe, project_settings
from envsnap.snapshot.schema import validate_member

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
KEY_ENV = {"ENVSNAP_REDACTION_KEY": "unit-test-key", "HOME": "/nonexistent"}


def _collect(
    tmp_path: Path, *files: str, environ: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    options = CaptureOptions(git=False, cwd=str(tmp_path), config_files=files, environ=environ or KEY_ENV)
    out = ConfigsProbe().collect(CaptureContext(options, target.in_process))
    assert isinstance(out, ProbeOutput)
    validate_member("<test>", "project/configs.json", out.data)
    json.dumps(out.data, allow_nan=False)  # storable as canonical JSON
    return out.data, out.extra


def _file(data: dict[str, Any], path: str) -> dict[str, Any]:
    return next(f for f in data["files"] if f["path"] == path)


def test_every_format_parses(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("model:\n  normalize: true\n  when: 2024-01-02\n  1: one\n")
    (tmp_path / "app.json").write_text('{"threshold": 0.5, "features": ["a", "b"], "nan": NaN}')
    (tmp_path / "app.toml").write_text("[train]\nepochs = 3\nstart = 1979-05-27T07:32:00Z\n")
    (tmp_path / "app.ini").write_text("[DEFAULT]\nLevel = info\n[db]\nHost = localhost\nurl = %(Host)s:5432\n")
    (tmp_path / ".env.production").write_text('export MODE=prod\nQUOTED="a # not a comment"\nPLAIN=x # comment\n')
    data, extra = _collect(tmp_path, "app.*", ".env.production")
    formats = {f["path"]: f["format"] for f in data["files"]}
    assert formats == {
        ".env.production": "dotenv", "app.ini": "ini", "app.json": "json", "app.toml": "toml", "app.yaml": "yaml"
    }  # fmt: skip
    assert _file(data, "app.yaml")["data"] == {"model": {"normalize": True, "when": "2024-01-02", "1": "one"}}
    assert _file(data, "app.json")["data"] == {"threshold": 0.5, "features": ["a", "b"], "nan": "nan"}
    assert _file(data, "app.toml")["data"] == {"train": {"epochs": 3, "start": "1979-05-27T07:32:00+00:00"}}
    assert _file(data, "app.ini")["data"] == {
        "DEFAULT": {"Level": "info"},
        "db": {"Host": "localhost", "url": "%(Host)s:5432"},
    }
    assert _file(data, ".env.production")["data"] == {"MODE": "prod", "QUOTED": "a # not a comment", "PLAIN": "x"}
    for entry in data["files"]:  # nothing secret: every raw copy is stored, byte for byte
        assert entry["raw_member"] and extra[entry["raw_member"]] == (tmp_path / entry["path"]).read_bytes()
        assert entry["sha256"] and entry["redacted"] == {}


def test_configmap_data_keys_become_config_keys(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: job-config}\n"
        "data:\n  LOG_LEVEL: debug\n  app.yaml: |\n    model:\n      normalize: false\n"
        "binaryData:\n  blob: AAEC\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
    )
    data, _ = _collect(tmp_path, "cm.yaml")
    entry = _file(data, "cm.yaml")
    assert entry["format"] == "configmap"
    assert entry["data"] == {
        "LOG_LEVEL": "debug", "app.yaml": {"model": {"normalize": False}}, "blob": "<binary: 4 base64 characters>"
    }  # fmt: skip
    assert entry["notes"] == ["1 document(s) that are not ConfigMaps left out"]


def test_dotenv_token_is_redacted_by_name_and_by_value(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"HF_TOKEN=hf_secretvalue123\nDEPLOY_NOTE=use {GITHUB_TOKEN} here\nDEBUG=1\n")
    data, extra = _collect(tmp_path, ".env")
    entry = _file(data, ".env")
    assert entry["data"]["HF_TOKEN"] == "<redacted:key>"
    assert GITHUB_TOKEN not in entry["data"]["DEPLOY_NOTE"] and "<redacted:" in entry["data"]["DEPLOY_NOTE"]
    assert entry["data"]["DEBUG"] == "1"
    assert {k: v["by"] for k, v in entry["redacted"].items()} == {"HF_TOKEN": "key", "DEPLOY_NOTE": "value"}
    assert all(len(v["digest"]) == 16 for v in entry["redacted"].values())
    assert entry["raw_member"] is None and entry["sha256"] is None and extra == {}
    assert data["key_id"] is not None
    assert "hf_secretvalue123" not in json.dumps(data) and GITHUB_TOKEN not in json.dumps(data)


def test_a_secret_in_a_comment_keeps_the_raw_copy_out(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(f"# old: password: {GITHUB_TOKEN}\nmodel: {{normalize: true}}\n")
    data, extra = _collect(tmp_path, "app.yaml")
    entry = _file(data, "app.yaml")
    assert entry["redacted"] == {} and entry["data"] == {"model": {"normalize": True}}
    assert entry["raw_member"] is None and extra == {}


def test_secret_key_names() -> None:
    assert is_secret_key("db_password") and is_secret_key("apiKey") and is_secret_key("api_tokens")
    assert not is_secret_key("tokenizer") and not is_secret_key("max_tokens") and not is_secret_key("threshold")
    redacted, redaction = redact_tree({"creds": {"password": 1234, "enabled": True}, "tokenizer": "bert"})
    assert redacted == {"creds": {"password": "<redacted:key>", "enabled": True}, "tokenizer": "bert"}
    assert set(redaction.found) == {"creds.password"}


def test_same_secret_same_digest_other_secret_other_digest(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("API_KEY=first-value\n")
    (tmp_path / "b.env").write_text("API_KEY=first-value\n")
    (tmp_path / "c.env").write_text("API_KEY=other-value\n")
    data, _ = _collect(tmp_path, "*.env")
    digests = {f["path"]: f["redacted"]["API_KEY"]["digest"] for f in data["files"]}
    assert digests["a.env"] == digests["b.env"] != digests["c.env"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.yaml", "model:\n  normalize: [true\n", "not valid YAML at line"),
        ("bad.toml", "[model\nnormalize = true\n", "not valid TOML"),
        ("bad.json", '{"model": {"normalize": tru}}', "not valid JSON"),
        ("bad.ini", "no section header\n", "not valid INI"),
        ("bad.env", "JUST A SENTENCE\n", "line 1 is not KEY=value"),
        ("model.json", b"\x89PNG\r\n\x1a\n\x00\x00binary", "is a binary file, not text"),
        ("latin.yaml", "caf\xe9: 1\n".encode("latin-1"), "is not UTF-8 text"),
        (
            "bomb.yaml",
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdef", "bcdefg", strict=True)
            ),
            "more than 200000 values",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, name: str, content: str | bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "good.yaml").write_text("ok: true\n")
    data, extra = _collect(tmp_path, name, "good.yaml")
    error = _file(data, name)["error"]
    assert error.startswith(f"{name}: ") and problem in error and "\n" not in error
    assert _file(data, "good.yaml")["data"] == {"ok": True}
    assert list(extra) == ["project/config/good.yaml"]


def test_a_100_mb_config_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "huge.yaml"
    with big.open("wb") as fh:
        fh.truncate(100 << 20)  # sparse: 100 MiB on paper, no disk used
    data, _ = _collect(tmp_path, "huge.yaml")
    assert _file(data, "huge.yaml")["error"] == "huge.yaml: is 100.0 MiB, larger than the 10 MiB limit; not read"


def test_missing_unmatched_directory_credential_unknown(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / ".netrc").write_text("machine x login y password z\n")
    (tmp_path / "notes.md").write_text("# hi\n")
    data, _ = _collect(tmp_path, "absent.yaml", "nothing/*.yaml", "conf", ".netrc", "notes.md")
    errors = {f["path"]: f["error"] for f in data["files"]}
    assert errors == {
        "absent.yaml": "absent.yaml: does not exist",
        "nothing/*.yaml": "nothing/*.yaml: no file matches this pattern",
        "conf": "conf: unknown config format (use .yaml/.yml, .json, .toml, .ini/.cfg/.conf, .env)",
        ".netrc": ".netrc: a credential file; never read",
        "notes.md": "notes.md: unknown config format (use .yaml/.yml, .json, .toml, .ini/.cfg/.conf, .env)",
    }


def test_config_files_from_the_envsnap_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.yaml").write_text("x: 1\n")
    (tmp_path / "pyproject.toml").write_text('[tool.envsnap.capture]\nconfig_files = ["conf/*.yaml"]\n')
    sub = tmp_path / "jobs"
    sub.mkdir()
    settings = project_settings(str(sub))
    assert settings.source == "../pyproject.toml"
    assert settings.config_files == ("../conf/*.yaml",)
    data, _ = _collect(sub)
    assert [f["data"] for f in data["files"]] == [{"x": 1}]
    (tmp_path / "pyproject.toml").write_text('[tool.envsnap.capture]\nconfig_files = "conf/a.yaml"\n')
    data, _ = _collect(sub)
    assert data["settings_error"].endswith("tool.envsnap.capture.config_files must be a list of paths or globs")


def test_raw_member_names_are_unique_after_case_folding(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "App.yaml").write_text("x: 1\n")
    (tmp_path / "b" / "app.yaml").write_text("x: 2\n")
    _, extra = _collect(tmp_path, "*/*.yaml")
    assert sorted(extra) == ["project/config/App.yaml", "project/config/app-2.yaml"]


def test_parse_config_json_tree_is_plain() -> None:
    fmt, tree, notes = parse_config("yaml", "a: !!binary aGVsbG8=\nb: !!set {x, y}\nc: .inf\n")
    assert fmt == "yaml" and notes == []
    assert tree == {"a": "<binary: 5 bytes>", "b": ["x", "y"], "c": "inf"}
