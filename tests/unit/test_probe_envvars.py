"""The envvars probe: names always, values by allowlist, keyed digests for the rest, the key's life cycle."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.envvars import DEFAULT_ENV_ALLOW, EnvvarsProbe, keeps_value, key_path, load_key
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

HF = "hf_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb"
GHP = "ghp_" + "aB3dE6fG9hJ2kL5mN8pQ1rS4tU7vW0xY3zA6"


def collect(environ: Mapping[str, str], *allow: str, tmp_path: Path | None = None) -> dict[str, Any]:
    env = dict(environ)
    if tmp_path is not None:
        env.setdefault("XDG_CONFIG_HOME", str(tmp_path / "config"))
    options = CaptureOptions(environ=env, env_allow=allow, argv=("t",))
    data: dict[str, Any] = EnvvarsProbe().collect(CaptureContext(options, target.in_process))
    validate_member("<test>", "env/envvars.json", data)
    return data


def test_reproduction_knobs_keep_their_values_and_everything_else_is_redacted(tmp_path: Path) -> None:
    environ = {
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_DEBUG": "INFO",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONHASHSEED": "0",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PATH": "/usr/local/bin:/usr/bin",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
        "HOME": "/home/someone",
        "MY_SETTING": "some value",
        "HF_TOKEN": HF,
        "TF_TOKEN_app_terraform_io": "abc.atlasv1.def",
    }
    variables = collect(environ, tmp_path=tmp_path)["variables"]
    assert set(variables) == {*environ, "XDG_CONFIG_HOME"}  # every name is recorded
    kept = {name: entry["value"] for name, entry in variables.items() if "value" in entry}
    redacted = ("HOME", "MY_SETTING", "HF_TOKEN", "TF_TOKEN_app_terraform_io")
    assert kept == {k: v for k, v in environ.items() if k not in redacted}
    for name in redacted:
        assert variables[name]["redacted"] is True
        assert len(variables[name]["digest"]) == 16
    assert HF not in canonical.dumps(variables).decode()


def test_exact_names_beat_the_secret_heuristic_globs_do_not(tmp_path: Path) -> None:
    environ = {"MY_API_KEY": "k-123", "MY_SETTING": "on", "OTHER": "x", "HF_TOKEN": HF}
    by_glob = collect(environ, "MY_*", "HF_*", tmp_path=tmp_path)["variables"]
    assert by_glob["MY_SETTING"] == {"value": "on"}
    assert "redacted" in by_glob["MY_API_KEY"]  # a glob must not sweep a secret-looking name in
    assert "redacted" in by_glob["HF_TOKEN"]
    by_name = collect(environ, "MY_API_KEY", "HF_TOKEN", tmp_path=tmp_path)["variables"]
    assert by_name["MY_API_KEY"] == {"value": "k-123"}  # the user named it: a decision
    assert "redacted" in by_name["HF_TOKEN"]  # ... except for known credentials
    assert "redacted" in by_name["OTHER"]


def test_kept_values_are_still_value_scanned(tmp_path: Path) -> None:
    environ = {"PATH": "/usr/bin:https://user:pa55w0rd@proxy.example.com/bin", "OMP_DISPLAY_ENV": GHP}
    variables = collect(environ, tmp_path=tmp_path)["variables"]
    assert variables["PATH"]["value"] == "/usr/bin:https://<redacted-url-userinfo>@proxy.example.com/bin"
    assert variables["OMP_DISPLAY_ENV"]["value"] == "<redacted:github-token>"
    # a scrubbed value keeps a digest, so that a change inside the redacted part still shows
    assert len(variables["PATH"]["digest"]) == 16


def test_digests_say_changed_or_unchanged_under_one_key(tmp_path: Path) -> None:
    first = collect({"A_SECRET": "one", "B": "same"}, tmp_path=tmp_path)
    second = collect({"A_SECRET": "two", "B": "same"}, tmp_path=tmp_path)
    assert first["policy"]["key_id"] == second["policy"]["key_id"]
    assert first["policy"]["comparable"] is True
    assert first["variables"]["B"] == second["variables"]["B"]
    assert first["variables"]["A_SECRET"]["digest"] != second["variables"]["A_SECRET"]["digest"]
    # the same value under another name gets another digest: no cross-variable correlation
    moved = collect({"C": "same"}, tmp_path=tmp_path)["variables"]["C"]["digest"]
    assert moved != first["variables"]["B"]["digest"]


def test_the_key_file_is_created_private_once_and_never_stored(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    data = collect(environ)
    path = Path(key_path(environ))
    assert path == tmp_path / "xdg" / "envsnap" / "redaction.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = bytes.fromhex(path.read_text().strip())
    assert len(secret) == 32
    assert data["policy"]["key_source"] == "file"
    assert path.read_text().strip() not in canonical.dumps(data).decode()
    assert load_key(environ).secret == secret  # reused, not regenerated
    home_only = {"HOME": str(tmp_path / "home")}
    assert key_path(home_only) == str(tmp_path / "home" / ".config" / "envsnap" / "redaction.key")


def test_the_key_can_come_from_the_environment(tmp_path: Path) -> None:
    a = collect({"ENVSNAP_REDACTION_KEY": "team-shared-key", "X": "1"}, tmp_path=tmp_path)
    b = collect({"ENVSNAP_REDACTION_KEY": "team-shared-key", "X": "1", "HOME": "/elsewhere"})
    c = collect({"ENVSNAP_REDACTION_KEY": "another-key", "X": "1"}, tmp_path=tmp_path)
    assert a["policy"]["key_source"] == "env"
    assert a["policy"]["key_id"] == b["policy"]["key_id"] != c["policy"]["key_id"]
    assert a["variables"]["X"] == b["variables"]["X"] != c["variables"]["X"]
    assert set(a["variables"]["ENVSNAP_REDACTION_KEY"]) == {"redacted", "digest"}
    assert "team-shared-key" not in canonical.dumps(a).decode()
    allowed = collect({"ENVSNAP_REDACTION_KEY": "k"}, "ENVSNAP_*", "ENVSNAP_REDACTION_KEY")["variables"]
    assert "redacted" in allowed["ENVSNAP_REDACTION_KEY"]  # never kept, even when named


def test_without_a_usable_key_no_digests_are_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the config directory should be")
    data = collect({"XDG_CONFIG_HOME": str(blocker), "SECRET_THING": "x", "OMP_NUM_THREADS": "2"})
    assert data["policy"] == {**data["policy"], "comparable": False, "key_id": None, "key_source": "none"}
    assert data["variables"]["SECRET_THING"] == {"redacted": True}
    assert data["variables"]["OMP_NUM_THREADS"] == {"value": "2"}
    corrupt = tmp_path / "corrupt"
    (corrupt / "envsnap").mkdir(parents=True)
    (corrupt / "envsnap" / "redaction.key").write_text("not hex\n")
    assert collect({"XDG_CONFIG_HOME": str(corrupt)})["policy"]["comparable"] is False


def test_policy_lists_patterns_and_output_is_stable(tmp_path: Path) -> None:
    environ = {"Z": "1", "A": "2", "OMP_NUM_THREADS": "3"}
    first = collect(environ, "MY_*", tmp_path=tmp_path)
    second = collect(dict(reversed(list(environ.items()))), "MY_*", tmp_path=tmp_path)
    assert canonical.dumps(first) == canonical.dumps(second)
    assert list(first["variables"]) == sorted(first["variables"])
    assert set(first["policy"]["allow"]) == {*DEFAULT_ENV_ALLOW, "MY_*"}


def test_undecodable_environment_bytes_are_stored_readably(tmp_path: Path) -> None:
    raw = os.fsdecode(b"/opt/caf\xe9/bin")  # a Latin-1 path in a UTF-8 locale: a lone surrogate
    data = collect({"PATH": raw, "WEIRD": raw}, tmp_path=tmp_path)
    assert data["variables"]["PATH"] == {"value": "/opt/caf\\xe9/bin"}
    canonical.dumps(data)  # serialisable


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("OMP_NUM_THREADS", True),
        ("CUDA_VISIBLE_DEVICES", True),
        ("TOKENIZERS_PARALLELISM", True),
        ("PYTHONHASHSEED", True),
        ("PYTHON_API_TOKEN", False),
        ("NCCL_SOCKET_IFNAME", True),
        ("LC_CTYPE", True),
        ("TF_ENABLE_ONEDNN_OPTS", True),
        ("TF_VAR_db_password", False),
        ("HF_TOKEN", False),
        ("HF_HUB_OFFLINE", True),
        ("AWS_SECRET_ACCESS_KEY", False),
        ("AWS_REGION", False),
        ("HOME", False),
    ],
)
def test_default_policy(name: str, kept: bool) -> None:
    exact = frozenset(p for p in DEFAULT_ENV_ALLOW if "*" not in p)
    globs = tuple(p for p in DEFAULT_ENV_ALLOW if "*" in p)
    assert keeps_value(name, exact, globs) is kept
