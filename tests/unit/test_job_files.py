"""job/files.json: how a command job's files are recorded (whole, sampled, listed) and their table forms."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.capture.command_run import CommandError, default_snapshot_name, resolve_command
from envsnap.capture.job_files import FileSpec, _record, file_format, table_form


def _table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_small_input_is_recorded_whole_with_its_table_form(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    entry, members = _record(FileSpec("input", "batch", str(path)), 0, str(tmp_path), 1 << 20, 1 << 10)
    assert entry["recorded"] == "whole" and entry["path"] == "batch.csv" and entry["size"] == path.stat().st_size
    assert members[entry["member"]] == path.read_bytes()
    assert _table(members[entry["table_member"]]).to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_large_csv_input_is_sampled_as_whole_lines_in_the_same_format(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(1000)))
    entry, members = _record(FileSpec("input", "big", str(path)), 0, str(tmp_path), 100, 10)
    sample = members[entry["member"]]
    assert entry["recorded"] == "sample" and len(sample) <= 100
    assert sample.startswith(b"a,b\n") and sample.endswith(b"\n")
    assert entry["sha256"] is not None  # the whole file's hash, so a diff still knows it changed
    assert entry["table_member"] is None  # a sample is not the table the job read


def test_large_parquet_input_is_sampled_as_parquet(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": list(range(50_000))}), path)
    limit = path.stat().st_size // 4
    entry, members = _record(FileSpec("input", "big", str(path)), 0, str(tmp_path), limit, 10)
    sample = _table(members[entry["member"]])
    assert entry["recorded"] == "sample" and 0 < sample.num_rows < 50_000
    assert sample.column("x").to_pylist() == list(range(sample.num_rows))


def test_json_output_table_form_and_outside_root_path(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"accuracy": 0.9, "n": 10}))
    entry, members = _record(FileSpec("output", "metrics", str(path)), 0, str(root), 1 << 20, 10)
    assert entry["path"] == str(path)  # outside the root: absolute
    assert _table(members[entry["table_member"]]).to_pylist() == [{"accuracy": 0.9, "n": 10}]
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"a": 1}\n{"a": 2}\n')
    assert _table(table_form(str(lines), "json") or b"").num_rows == 2


def test_missing_unreadable_and_secret_files_are_entries_not_failures(tmp_path: Path) -> None:
    entry, members = _record(FileSpec("output", "gone", str(tmp_path / "gone.csv")), 0, str(tmp_path), 100, 10)
    assert entry["recorded"] == "missing" and "gone.csv" in entry["error"] and not members
    secret = tmp_path / "creds.txt"
    secret.write_text("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    entry, members = _record(FileSpec("read", None, str(secret)), 3, str(tmp_path), 100, 1000)
    assert entry["recorded"] == "listed" and "credential" in entry["error"] and not members
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    entry, members = _record(FileSpec("output", "broken", str(broken)), 0, str(tmp_path), 100, 10)
    assert entry["recorded"] == "whole" and entry["table_member"] is None and "table_error" in entry


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.parquet", "parquet"), ("a.csv.gz", "csv"), ("a.tsv", "csv"), ("a.jsonl", "json"), ("model.pkl", "other")],
)
def test_file_format_by_extension(name: str, fmt: str) -> None:
    assert file_format(name) == fmt


def test_resolve_command_finds_the_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/usr/bin/env python3\nprint(1)\n")
    script.chmod(0o755)
    resolved = resolve_command([str(script)])
    assert resolved.python_source == "shebang" and resolved.is_python
    launcher = tmp_path / "long"
    launcher.write_text("#!/bin/sh\n'''exec' \"/very/long/venv/bin/python3\" \"$0\" \"$@\"\n' '''\nimport x\n")
    launcher.chmod(0o755)
    assert resolve_command([str(launcher)]).python == "/very/long/venv/bin/python3"
    shell = tmp_path / "job.sh"
    shell.write_text("#!/bin/sh\necho hi\n")
    shell.chmod(0o755)
    assert resolve_command([str(shell)]).python_source == "PATH"
    plain = tmp_path / "data.txt"
    plain.write_text("x")
    with pytest.raises(CommandError, match="not executable"):
        resolve_command([str(plain)])


def test_default_snapshot_name_names_the_job() -> None:
    assert default_snapshot_name(["python", "train.py", "--lr", "3"], 0).startswith("train-19700101T000000Z")
    assert default_snapshot_name(["python3", "-m", "pkg.score"], 0).startswith("pkg.score-")
    assert default_snapshot_name(["/usr/bin/make", "all"], 0).startswith("make-")


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl.gz", "weights.pt"])
def test_a_pickle_the_job_wrote_is_listed_never_stored(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x04\x95 not really a pickle")
    entry, members = _record(FileSpec("written", None, str(path)), 0, str(tmp_path), 1 << 20, 1 << 20)
    assert entry["recorded"] == "listed" and "pickle" in entry["error"] and not members
    assert entry["sha256"] is not None
