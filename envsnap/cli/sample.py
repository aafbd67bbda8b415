"""``envsnap sample PATH -n N -o FILE``: a uniform, seeded sample of a dataset, written as parquet or CSV.

PATH may be an ``s3://`` object or prefix (docs/storage.md): parquet is read by range requests, CSV streamed.

Exit status: 0 written; 2 usage error; 3 the input cannot be sampled (missing, not parquet/CSV, corrupt,
unknown column) or the output cannot be written. Nothing is written unless the sample succeeded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from envsnap.cli._common import cli_errors, write_output
from envsnap.cli._options import sampling_options
from envsnap.errors import OutputError

__all__ = ["ProgressBar", "sample"]

#: Sources whose sampled bytes reach this get a progress bar (on a terminal only).
LARGE_SOURCE = 64 << 20
OUTPUT_SUFFIXES = (".parquet", ".csv")


class ProgressBar:
    """A ``progress(done, total)`` callback drawing a rich bar on stderr, for large reads on a terminal."""

    def __init__(self, threshold: int = LARGE_SOURCE) -> None:
        self.threshold = threshold
        self._bar: Any = None
        self._task: Any = None
        self._decided = False

    def __call__(self, done: int, total: int) -> None:
        if not self._decided:
            self._decided = True
            if total < self.threshold or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("sampling"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("sampling", total=total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        """Remove the bar (it is transient: the summary line replaces it)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _check_output(output: str, force: bool) -> None:
    """Refuse a bad destination before reading anything (the same checks as the final write)."""
    if not output.lower().endswith(OUTPUT_SUFFIXES):
        raise typer.BadParameter(f"-o {output}: the sample is written as parquet or CSV; name it *.parquet or *.csv")
    dest = Path(output).absolute()
    if not dest.parent.is_dir():
        raise OutputError(f"cannot write {output}: directory {dest.parent} does not exist; create it first")
    if dest.is_dir():
        raise OutputError(f"cannot write {output}: it is a directory; give a file name")
    if dest.exists() and not force:
        raise OutputError(f"{output} already exists; pass --force to replace it")


@cli_errors
def sample(
    path: str = typer.Argument(
        ...,
        help="A parquet file, a directory of parquet files (hive partitions included) or a CSV file; local or "
        "s3://bucket/key, s3://bucket/prefix/ (read by range requests).",
    ),
    output: str = typer.Option(..., "--output", "-o", help="Where to write the sample: FILE.parquet or FILE.csv."),
    rows: int = typer.Option(None, "--rows", "-n", min=0, help="Rows to sample (default 1000)."),
    fraction: float = typer.Option(None, "--fraction", min=0.0, max=1.0, help="Sample this fraction instead."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample: same data, options and seed, same rows."),
    method: str = typer.Option(
        "uniform", "--method", help="uniform (iid) or row-groups (whole random row groups first: fast, not iid)."
    ),
    columns: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--columns", help="Only these columns (comma-separated or repeated); others are not decoded."
    ),
    mask: list[str] = typer.Option(  # noqa: B008
        [], "--mask", help="Replace this column's values with salted tokens before writing (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
) -> None:
    """Take a uniform, seeded sample of PATH and write it to FILE (parquet or CSV)."""
    options = sampling_options(rows, fraction, seed, method, columns, mask)
    _check_output(output, force)
    from envsnap.capture.base import InputSpec
    from envsnap.capture.sample import mask_salt, parquet_bytes, sample_input

    salt = mask_salt(os.environ) if options.mask else None
    bar = ProgressBar()
    try:
        sampled = sample_input(InputSpec(Path(path).name or path, path), options, salt=salt, progress=bar)
    finally:
        bar.close()
    if output.lower().endswith(".csv"):
        import io

        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(sampled.table, sink)
        data = sink.getvalue()
    else:
        data = parquet_bytes(sampled.table)
    written = write_output(output, data, force=force)
    record = sampled.record
    how = record["method"] if record["iid"] else f"{record['method']}, not iid"
    masked = f", masked {', '.join(record['masking']['columns'])}" if record["masking"] else ""
    sys.stdout.write(
        f"sampled {record['rows']:,} of {record['source']['rows']:,} rows from {path} "
        f"({how}, seed {record['seed']}{masked}) into {written}\n"
    )
