"""``job/files.json``: the files a command job read and wrote, recorded so that a replay can supply them.

Written for ``envsnap run -- COMMAND`` only (:mod:`envsnap.capture.command_run`). Each file has a role:

* ``input`` (``--input NAME=PATH``): recorded whole up to ``limit_bytes`` (64 MiB by default), above it a
  sample in the same format (a CSV's header and first lines up to the limit; a parquet file's sampled
  rows), and ``recorded`` says which: ``whole`` or ``sample``;
* ``output`` (``--output [NAME=]PATH``): what the job wrote, recorded after it exited, with its table
  form (``table_member``, parquet) when it is parquet, CSV or JSON: the form the differ and the replay
  compare;
* ``read`` / ``written``: files the job opened that nobody named (found by the job bootstrap's audit
  hook): listed by path, and recorded whole when small (``SMALL_FILE``) and not inside ``.git``.

A file that cannot be read is an entry with ``error`` (``recorded: missing``), never a failed snapshot.
Every member is bytes as found; the text scanners of the capture do not touch binary members, so a
file that looks like it holds a credential is listed but not stored (``recorded: listed``,
``error`` says why). Neither is a pickle (``*.pkl``, ``*.joblib``, PyTorch's ``*.pt``): a snapshot never
holds one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap.capture.artifacts import detect_format
from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.core.hashing import hash_file
from envsnap.core.redact import scrub_text
from envsnap.core.storage import is_remote

__all__ = [
    "LIMIT_BYTES",
    "SMALL_FILE",
    "FileSpec",
    "JobFilesProbe",
    "file_format",
    "relative_to_root",
    "table_form",
]

#: Files up to this size are recorded whole (``--input``/``--output``); larger inputs are sampled.
LIMIT_BYTES = 64 << 20
#: Files the job opened without being named are recorded up to this size (else only listed).
SMALL_FILE = 1 << 20
#: At most this many unnamed files are recorded (the rest are listed).
MAX_UNNAMED = 50
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: Formats that unpickle when loaded (PyTorch's files hold pickles too): a snapshot never stores one.
PICKLE_FORMATS = frozenset({"joblib", "pickle", "pytorch"})


@dataclass(frozen=True)
class FileSpec:
    """One file of a command job: ``role`` input/output/read/written, ``name`` (or None), ``path``."""

    role: str
    name: str | None
    path: str


def file_format(path: str) -> str:
    """``parquet``, ``csv``, ``json`` or ``other``, by extension (``.csv.gz`` is csv, ``.jsonl`` json)."""
    lower = path.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        lower = lower.removesuffix(suffix)
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        return "json"
    return "other"


def table_form(path: str, fmt: str) -> bytes | None:
    """The file as parquet bytes (what the differ compares), or None when it is not a table."""
    import pyarrow as pa

    from envsnap.capture.sample import parquet_bytes

    if fmt == "parquet":
        import pyarrow.parquet as pq

        return parquet_bytes(pq.read_table(path))
    if fmt == "csv":
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter="\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ",")
        return parquet_bytes(pacsv.read_csv(path, parse_options=parse))
    if fmt == "json":
        with open(path, "rb") as fh:
            text = fh.read()
        try:
            doc: Any = json.loads(text)
        except ValueError:  # JSON lines
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        if isinstance(doc, dict):
            doc = [doc] if all(not isinstance(v, (dict, list)) for v in doc.values()) else None
        if isinstance(doc, list) and doc and all(isinstance(row, dict) for row in doc):
            return parquet_bytes(pa.Table.from_pylist(doc))
    return None


def relative_to_root(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies inside it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        inside = os.path.commonpath([absolute, root]) == root
    except ValueError:
        inside = False
    return os.path.relpath(absolute, root) if inside else absolute


def _csv_head(path: str, limit: int) -> bytes:
    """The first lines of a CSV, whole lines only, up to ``limit`` bytes (the header is the first)."""
    with open(path, "rb") as fh:
        data = fh.read(limit)
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else data


def _parquet_sample(path: str, limit: int) -> bytes:
    import pyarrow.parquet as pq

    from envsnap.capture.sample import parquet_bytes

    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    per_row = max(1, os.path.getsize(path) // max(1, meta.num_rows))
    rows = max(1, min(meta.num_rows, limit // per_row))
    batches = []
    taken = 0
    for batch in parquet.iter_batches(batch_size=min(rows, 65536)):
        batches.append(batch.slice(0, rows - taken))
        taken += batches[-1].num_rows
        if taken >= rows:
            break
    import pyarrow as pa

    return parquet_bytes(pa.Table.from_batches(batches, schema=parquet.schema_arrow))


def _looks_secret(data: bytes) -> bool:
    """Whether a text file holds something the capture's scanners would redact (then it is not stored)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return scrub_text(text) != text


def _record(spec: FileSpec, index: int, root: str, limit: int, small: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    fmt = file_format(spec.path)
    entry: dict[str, Any] = {
        "role": spec.role,
        "name": spec.name,
        "path": scrub_text(relative_to_root(spec.path, root)),
        "format": fmt,
        "size": None,
        "sha256": None,
        "recorded": "missing",
        "member": None,
        "table_member": None,
        "error": None,
    }
    members: dict[str, bytes] = {}
    try:
        st = os.stat(spec.path)
    except OSError as exc:
        entry["error"] = f"{spec.path}: {exc.strerror or exc}"
        return entry, members
    if not os.path.isfile(spec.path):
        entry["error"] = f"{spec.path} is not a regular file"
        return entry, members
    entry["size"] = st.st_size
    digest, _ = hash_file(spec.path)
    entry["sha256"] = digest
    label = _UNSAFE.sub("_", spec.name or str(index)).strip("_.") or str(index)
    member = f"job/files/{spec.role}/{label}/{_UNSAFE.sub('_', os.path.basename(spec.path)) or 'file'}"
    cap = limit if spec.role in ("input", "output") else small
    try:
        if st.st_size <= cap:
            with open(spec.path, "rb") as fh:
                data = fh.read()
            entry["recorded"] = "whole"
        elif spec.role == "input" and fmt == "csv" and not spec.path.lower().endswith((".gz", ".bz2", ".xz", ".zst")):
            data = _csv_head(spec.path, limit)
            entry["recorded"] = "sample"
        elif spec.role == "input" and fmt == "parquet":
            data = _parquet_sample(spec.path, limit)
            entry["recorded"] = "sample"
        else:
            entry["recorded"] = "listed"
            entry["error"] = f"larger than {cap} bytes: listed by hash, not recorded"
            data = b""
    except (OSError, ValueError) as exc:
        entry["recorded"] = "listed"
        entry["error"] = f"{spec.path}: {exc}"
        return entry, members
    if entry["recorded"] in ("whole", "sample"):
        if detect_format(spec.path) in PICKLE_FORMATS:
            entry["recorded"] = "listed"
            entry["error"] = "a pickle: listed by hash, never stored (--artifact records a model's metadata)"
        elif _looks_secret(data):
            entry["recorded"] = "listed"
            entry["error"] = "holds what looks like a credential: listed by hash, not recorded"
        else:
            members[member] = data
            entry["member"] = member
    if spec.role in ("input", "output") and fmt != "other" and entry["recorded"] == "whole":
        try:
            table = table_form(spec.path, fmt)
        except Exception as exc:  # noqa: BLE001 - a malformed table is a fact about the job's file
            entry["table_error"] = scrub_text(f"{type(exc).__name__}: {exc}")[:500]
            table = None
        if table is not None:
            table_member = f"job/tables/{spec.role}/{label}.parquet"
            members[table_member] = table
            entry["table_member"] = table_member
    return entry, members


@register
class JobFilesProbe(Probe):
    """The inputs, outputs and opened files of a command job (``envsnap run -- COMMAND``)."""

    name = "job_files"
    member = "job/files.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return bool(ctx.options.job_files)

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        command = ctx.options.command or {}
        root = str(command.get("root_abs") or ctx.options.cwd)
        files: list[dict[str, Any]] = []
        extra: dict[str, bytes] = {}
        unnamed = 0
        for index, spec in enumerate(ctx.options.job_files):
            if is_remote(spec.path):  # an s3:// input: sampled into data/inputs/, not a file of the job's disk
                continue
            small = SMALL_FILE if unnamed < MAX_UNNAMED else 0
            if spec.role in ("read", "written"):
                unnamed += 1
                if "/.git/" in spec.path or not Path(spec.path).is_file():
                    continue
            entry, members = _record(spec, index, root, LIMIT_BYTES, small)
            files.append(entry)
            extra.update(members)
        return ProbeOutput({"limit_bytes": LIMIT_BYTES, "files": files}, extra)
