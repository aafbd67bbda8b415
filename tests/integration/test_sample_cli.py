"""``envsnap sample``: in-process through typer's CliRunner, once through a real subprocess and a real tty."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from typer.testing import CliRunner

from envsnap.cli import app
from envsnap.cli.sample import ProgressBar

runner = CliRunner()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    for day in (1, 2):
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        ids = list(range(day * 10_000, day * 10_000 + 4000))
        table = pa.table({"id": ids, "email": [f"u{i % 30}@corp.example" for i in ids], "v": [i / 3 for i in ids]})
        pq.write_table(table, folder / "part-0.parquet", row_group_size=500)
    return root


def one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    stderr = result.stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    return stderr


def test_sample_writes_parquet_and_prints_one_summary_line(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    result = runner.invoke(app, ["sample", str(dataset), "-n", "300", "-o", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"sampled 300 of 8,000 rows from {dataset} (uniform, seed 4) into {out}\n"
    assert result.stderr == ""  # no progress bar off a terminal
    table = pq.read_table(out)
    assert table.column_names == ["id", "email", "v", "day"] and table.num_rows == 300
    assert all(r["id"] // 10_000 == r["day"] for r in table.to_pylist())
    again = tmp_path / "again.parquet"
    runner.invoke(app, ["sample", str(dataset), "-n", "300", "-o", str(again), "--seed", "4"])
    assert again.read_bytes() == out.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_csv_output_masking_columns_and_row_groups(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    args = [
        "sample",
        str(dataset),
        "-o",
        str(out),
        "--columns",
        "email,id",
        "--mask",
        "email",
        "--method",
        "row-groups",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(row-groups, not iid, seed 0, masked email)" in result.stdout
    table = pacsv.read_csv(out)
    assert table.column_names == ["email", "id"] and table.num_rows == 1000
    assert "corp.example" not in out.read_text()
    assert all(e.startswith("tok_") for e in table.column("email").to_pylist())


def test_fraction(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["sample", str(dataset), "--fraction", "0.05", "-o", str(out)])
    assert result.exit_code == 0 and pq.read_metadata(out).num_rows == 400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.txt"], "*.parquet or *.csv"),
        (["-n", "5", "--fraction", "0.5"], "not both"),
        (["--method", "magic"], "--method"),
    ],
)
def test_usage_errors_exit_2(dataset: Path, tmp_path: Path, args: list[str], message: str) -> None:
    full = ["sample", str(dataset), *args]
    if "-o" not in args:
        full += ["-o", str(tmp_path / "out.parquet")]
    line = one_line(runner.invoke(app, full), 2)
    assert message in line
    assert not (tmp_path / "out.parquet").exists()


def test_input_errors_exit_3_naming_the_input(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    cases = [
        ([str(tmp_path / "missing.parquet")], "input 'missing.parquet'", "no such file"),
        ([str(dataset), "--columns", "nope"], "input 'events'", "no column 'nope' (--columns)"),
        ([str(dataset), "--mask", "ssn"], "input 'events'", "no column 'ssn' (--mask)"),
    ]
    for args, name, message in cases:
        line = one_line(runner.invoke(app, ["sample", *args, "-o", str(out)]), 3)
        assert line.startswith("envsnap: error: ") and name in line and message in line
        assert not out.exists()


def test_existing_output_needs_force(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(b"precious")
    line = one_line(runner.invoke(app, ["sample", str(dataset), "-o", str(out)]), 3)
    assert "already exists" in line and "--force" in line and out.read_bytes() == b"precious"
    assert runner.invoke(app, ["sample", str(dataset), "-o", str(out), "--force"]).exit_code == 0
    assert pq.read_metadata(out).num_rows == 1000


def test_real_subprocess(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "sample", str(dataset), "-n", "7", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sampled 7 of 8,000 rows") and proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "sample", str(tmp_path / "nope"), "-o", str(tmp_path / "n.parquet")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1


def draw_bar(monkeypatch: pytest.MonkeyPatch, threshold: int) -> str:
    """Drive a ProgressBar with stderr on a real pseudo-terminal; return what reached the terminal."""
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            bar = ProgressBar(threshold=threshold)
            for done in (0, 50, 100):
                bar(done, 100)
            bar.close()
            terminal.flush()
        os.set_blocking(master, False)
        try:
            return os.read(master, 65536).decode("utf-8", "replace")
        except OSError:  # EIO (slave closed) or EAGAIN: nothing was written
            return ""
    finally:
        os.close(master)


def test_progress_bar_draws_on_a_terminal_for_large_sources_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "sampling" in draw_bar(monkeypatch, threshold=10)
    assert draw_bar(monkeypatch, threshold=1000) == ""
