"""Sampling of input batches: uniform, seeded, and reading only what the sample needs.

Sources: a parquet file; a directory (dataset) of parquet files, hive partitions included (partition keys
become columns of the sample); a CSV file (``.csv``/``.tsv``, optionally ``.gz``/``.bz2``/``.zst``/``.lz4``);
in-process, a pandas DataFrame, a polars DataFrame or LazyFrame (collected), a pyarrow Table or RecordBatch,
or any object exporting an Arrow stream. Neither pandas nor polars is imported here: a frame is recognised by
its type's module. An :class:`UnavailableInput` stands for an input that could not be produced (``on_failure``'s
``inputs=`` callable raised): it is recorded as a failed input with its reason.

How rows are drawn (``record["algorithm"]``):

* ``row-ids`` (parquet, in-memory; iid): the global row ids are drawn up front with ``random.Random(seed)``
  from the row counts in the parquet footers (no data is read for that). Row groups are then streamed one
  by one and only the drawn rows are kept, so memory is bounded by one row group, never the dataset; row
  groups without a drawn row are not read, and within a row group only the pages holding drawn rows are
  decoded (:mod:`envsnap.capture.parquet_pages`). With ``columns`` only those columns are decoded.
* ``row-groups`` (``method="row-groups"``; **not iid**): whole row groups are picked at random (enough to
  hold the requested rows, and at least 2 when there are, so that the rows never all come from one stretch
  of the data), then rows uniformly within them. Much faster on big datasets (it reads a few row groups,
  not all), but rows that sit together in the data come together in the sample.
* ``reservoir`` (CSV with ``rows``; iid): one streaming pass, reservoir sampling (Li's Algorithm L).
* ``count-then-row-ids`` (CSV with ``fraction``; iid): a first pass counts the rows, a second takes the
  drawn ids. CSV has no row groups, so ``row-groups`` samples a CSV uniformly and says so in ``note``.

The same source, options and seed give the same rows, in source order. Masked columns (``options.mask``)
are replaced by salted tokens before anything else sees the sample (stats, parquet, the stages).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from envsnap.capture.base import InputSpec, SampleOptions
from envsnap.capture.sample_access import Source, open_source
from envsnap.capture.sample_csv import csv_kind, sample_csv
from envsnap.capture.sample_files import Drawn, Progress, check_columns, draw, sample_parquet, target_rows
from envsnap.core.arrow import int64_array, string_array, without_views
from envsnap.core.column_stats import column_stats
from envsnap.errors import InputError

__all__ = [
    "SampledInput",
    "UnavailableInput",
    "describe_source",
    "mask_salt",
    "mask_table",
    "mask_token",
    "parquet_bytes",
    "salt_id",
    "sample_input",
]

METHODS = ("uniform", "row-groups")
_MASK_CONTEXT = b"envsnap-mask-v1"


@dataclass(frozen=True)
class SampledInput:
    """One sampled input: the sample (masked columns already tokenised) and its JSON-able record."""

    name: str
    table: pa.Table
    record: dict[str, Any]


@dataclass(frozen=True)
class UnavailableInput:
    """An input whose value could not be produced; sampling it fails with ``reason`` (``shown`` names it)."""

    reason: str
    shown: str = "<callable>"


# -- masking ---------------------------------------------------------------------------------------------


@cache
def _process_salt() -> bytes:
    return secrets.token_bytes(32)


def mask_salt(environ: Mapping[str, str]) -> bytes:
    """The salt of mask tokens: derived from the per-user redaction key, else random for this process.

    Derived from the key that ``env/envvars.json`` digests use (``ENVSNAP_REDACTION_KEY`` or the key file),
    so tokens are stable across snapshots of one user; the salt itself is never stored.
    """
    from envsnap.capture.envvars import load_key

    key = load_key(environ).secret
    if key is None:
        return _process_salt()
    return hmac.new(key, _MASK_CONTEXT, hashlib.sha256).digest()


def salt_id(salt: bytes) -> str:
    """8 hex digits naming a salt: tokens of two snapshots are comparable exactly when their ids are equal."""
    return hashlib.sha256(salt + b"envsnap-salt-id").hexdigest()[:8]


def _token_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, (int, float)):
        return repr(value).encode()
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).encode()
    return json.dumps(value, sort_keys=True, default=str).encode()


def mask_token(value: Any, salt: bytes) -> str | None:
    """``tok_`` + 16 hex digits of HMAC-SHA256(salt, value); None stays None.

    Equal values give equal tokens whatever column or input they sit in, so joins and group-bys on masked
    keys behave as on the raw values.
    """
    if value is None:
        return None
    return "tok_" + hmac.new(salt, _token_bytes(value), hashlib.sha256).hexdigest()[:16]


def mask_table(table: pa.Table, columns: Iterable[str], salt: bytes) -> pa.Table:
    """``table`` with every column named in ``columns`` replaced by string tokens (nulls stay null)."""
    import pyarrow.compute as pc

    wanted = set(columns)
    for i, name in enumerate(table.column_names):
        if name not in wanted:
            continue
        column = table.column(i)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_temporal(column.type):  # tokens of the ISO text: pyarrow's datetimes import pandas
            column = column.cast(pa.string())
        try:
            uniques = pc.unique(column)
            tokens = string_array([mask_token(v, salt) for v in uniques.to_pylist()])
            masked: pa.Array | pa.ChunkedArray = tokens.take(pc.index_in(column, value_set=uniques))
        except pa.ArrowNotImplementedError:  # nested values: token each row
            masked = string_array([mask_token(v, salt) for v in column.to_pylist()])
        table = table.set_column(i, pa.field(name, pa.string(), nullable=True), masked)
    return table


# -- in-memory sources -----------------------------------------------------------------------------------


def _is_dataframe(source: Any) -> bool:
    kind = type(source)
    return kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "pandas"


def _polars_kind(source: Any) -> str | None:
    """``"DataFrame"`` or ``"LazyFrame"`` for a polars frame, else None (polars is never imported)."""
    kind = type(source)
    if kind.__module__.split(".")[0] == "polars" and kind.__name__ in ("DataFrame", "LazyFrame"):
        return kind.__name__
    return None


def _polars_table(name: str, source: Any, kind: str) -> pa.Table:
    """A polars frame as an Arrow table: a LazyFrame is collected, then the Arrow C stream or ``to_arrow``."""
    shown = f"<polars.{kind}>"
    try:
        frame = source.collect() if kind == "LazyFrame" else source
        table = pa.table(frame) if hasattr(frame, "__arrow_c_stream__") else frame.to_arrow()
        return without_views(table)
    except Exception as exc:  # noqa: BLE001 - whatever polars raises, the input is named and kept out
        raise InputError(
            name, shown, f"cannot convert the polars {kind} to Arrow: {type(exc).__name__}: {exc}"
        ) from None


def _is_ndarray(source: Any) -> bool:
    kind = type(source)
    return kind.__name__ == "ndarray" and kind.__module__ == "numpy"


def _array_table(name: str, source: Any) -> pa.Table:
    """A 1-D or 2-D numpy array as a table (``value``; ``c0..cN``), as a stage value of that kind is recorded."""
    from envsnap._target.runner.values import numpy_arrays

    if source.ndim not in (1, 2):
        raise InputError(
            name, "<ndarray>", f"a {source.ndim}-D array cannot be sampled by rows", hint="give a 2-D array"
        )
    try:
        return numpy_arrays.to_arrow(source, None)  # 1-D: one column, `value`; 2-D: c0..cN
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError(name, "<ndarray>", f"cannot convert the array to Arrow: {exc}") from None


def describe_source(source: Any) -> str:
    """How an input's source is shown: its path, or ``<DataFrame>``/``<Table>``/``<TypeName>``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, UnavailableInput):
        return source.shown
    if _is_dataframe(source):
        return "<DataFrame>"
    polars = _polars_kind(source)
    if polars is not None:
        return f"<polars.{polars}>"
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return "<Table>"
    return f"<{type(source).__name__}>"


def _sample_memory(name: str, source: Any, options: SampleOptions, rng: random.Random) -> Drawn:
    shown = describe_source(source)
    note = "an in-memory table has no row groups: sampled uniformly" if options.method == "row-groups" else None
    if _is_dataframe(source):
        labels = {str(c): c for c in source.columns}
        total = len(source)
        check_columns(name, shown, list(labels), options)
        ids = draw(rng, total, target_rows(options, total))
        keep_index = type(source.index).__name__ != "RangeIndex"  # a RangeIndex is only row numbers
        try:
            table = pa.Table.from_pandas(source.iloc[ids], preserve_index=keep_index)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(name, shown, f"cannot convert the DataFrame to Arrow: {exc}") from None
        kind = "pandas"
    else:
        polars = _polars_kind(source)
        kind = "arrow"
        if polars is not None:
            source = _polars_table(name, source, polars)
            kind = "polars"  # read through Arrow, handed to the stages as polars again
        elif _is_ndarray(source):
            source = _array_table(name, source)
            kind = "numpy"
        elif isinstance(source, pa.RecordBatch):
            source = pa.Table.from_batches([source])
        elif not isinstance(source, pa.Table):
            if not hasattr(source, "__arrow_c_stream__"):
                raise InputError(
                    name,
                    shown,
                    f"unsupported source of type {type(source).__name__}",
                    hint="give a path, a pandas or polars DataFrame or a pyarrow Table",
                )
            try:
                source = pa.table(source)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise InputError(name, shown, f"cannot read it as an Arrow table: {exc}") from None
        total = source.num_rows
        check_columns(name, shown, source.column_names, options)
        table = source.take(int64_array(draw(rng, total, target_rows(options, total))))
    schema = table.schema
    wanted = check_columns(name, shown, schema.names, options)
    table = table.select(wanted).combine_chunks()
    source_facts: dict[str, Any] = {
        "kind": kind,
        "path": None,
        "size": None,
        "rows": total,
        "files": None,
        "row_groups": None,
        "partitioning": [],
    }
    return Drawn(table, schema, source_facts, None, "row-ids", note=note)


# -- the entry point -------------------------------------------------------------------------------------


def _sample_path(name: str, path: str, options: SampleOptions, rng: random.Random, progress: Progress | None) -> Drawn:
    source = open_source(name, path)
    try:
        return _sample_source(name, path, source, options, rng, progress)
    finally:
        source.close()


def _sample_source(
    name: str, path: str, source: Source, options: SampleOptions, rng: random.Random, progress: Progress | None
) -> Drawn:
    entry = source.entry()
    if entry is None:
        return sample_parquet(name, path, options, rng, progress, source)
    fh = source.open(entry)
    try:
        head = fh.read_at(0, 4)
    except OSError as exc:
        raise InputError(name, path, f"cannot read it: {exc.strerror or exc}") from None
    finally:
        fh.close()
    kind = csv_kind(path)
    if head in (b"PAR1", b"PARE") or kind is None:
        if head not in (b"PAR1", b"PARE") and not path.lower().endswith((".parquet", ".parq", ".pq")):
            raise InputError(
                name,
                path,
                "is neither a parquet file (no PAR1 magic bytes) nor a CSV file (.csv, .tsv)",
                hint="give a parquet file, a directory of parquet files or a .csv file",
            )
        return sample_parquet(name, path, options, rng, progress, source)
    return sample_csv(name, path, kind, options, rng, progress, source, entry)


def _check_options(name: str, shown: str, options: SampleOptions) -> None:
    if options.method not in METHODS:
        raise InputError(name, shown, f"unknown sampling method {options.method!r}; use one of {', '.join(METHODS)}")
    if options.fraction is not None and not 0.0 <= options.fraction <= 1.0:
        raise InputError(name, shown, f"fraction {options.fraction} is not between 0 and 1")
    if options.fraction is None and options.rows is not None and options.rows < 0:
        raise InputError(name, shown, f"cannot sample {options.rows} rows")


def sample_input(
    spec: InputSpec,
    options: SampleOptions,
    *,
    salt: bytes | None,
    progress: Progress | None = None,
) -> SampledInput:
    """Sample one input as ``options`` say; return the sample (masked) and its record.

    ``salt`` keys the mask tokens (see :func:`mask_salt`); when columns are to be masked and no salt is
    given, a random per-process salt is used (masking is never skipped). ``progress(done, total)`` is called
    with bytes read so far, for a caller that wants a progress bar; the library itself never prints.
    Raises :class:`~envsnap.errors.InputError` naming the input for a missing, unreadable, corrupt or
    unsupported source and for an unknown column in ``columns`` or ``mask``.
    """
    name = spec.name
    shown = describe_source(spec.source)
    if isinstance(spec.source, UnavailableInput):
        raise InputError(name, shown, spec.source.reason)
    _check_options(name, shown, options)
    rng = random.Random(options.seed)  # noqa: S311 - a reproducible sample, not a secret
    if isinstance(spec.source, (str, os.PathLike)):
        drawn = _sample_path(name, os.fspath(spec.source), options, rng, progress)
    else:
        drawn = _sample_memory(name, spec.source, options, rng)
    table = drawn.table
    masked = sorted(set(options.mask) & set(table.column_names))
    masking = None
    if options.mask:
        salt = salt if salt is not None else _process_salt()
        table = mask_table(table, masked, salt)
        masking = {"columns": masked, "salt_id": salt_id(salt)}
    iid = drawn.algorithm != "row-groups"
    record = {
        "name": name,
        "source": drawn.source,
        "fingerprint": drawn.fingerprint,
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in drawn.schema],
        "method": "uniform" if iid else "row-groups",
        "iid": iid,
        "algorithm": drawn.algorithm,
        "seed": options.seed,
        "requested": {
            "rows": None if options.fraction is not None else (options.rows if options.rows is not None else 1000),
            "fraction": options.fraction,
            "method": options.method,
        },
        "rows": table.num_rows,
        "row_groups_read": drawn.row_groups_read,
        "selected": list(dict.fromkeys(options.columns)) if options.columns else None,
        "masking": masking,
        "note": drawn.note,
        "columns": column_stats(table, masked=masked, population=drawn.source["rows"]),
    }
    return SampledInput(name, table, record)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as parquet bytes (zstd); the same table always gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
