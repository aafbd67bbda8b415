"""``artifacts/index.json`` + ``artifacts/NAME.json``: model and config files named with ``--artifact``.

Each artifact is recorded by path (as given and resolved), size and sha256 (streamed in 1 MiB chunks),
its format, and for known formats the metadata needed to check training-serving parity:

* ``joblib`` / ``pickle`` (by file name: ``*.joblib``, ``*.pkl``, ``*.pickle``, also compressed like
  ``model.joblib.gz``): the object is loaded in a subprocess of the TARGET interpreter
  (:mod:`envsnap._target.artifact_load`), never in envsnap's process: unpickling executes code and
  imports the job's libraries, which must be the job's own versions. For scikit-learn estimators it
  records the class, simple parameters, ``feature_names_in_``, ``n_features_in_``, fitted arrays
  (scaler ``mean_``/``scale_``, imputer ``statistics_``, ``classes_``, ...), pipeline steps, and the
  scikit-learn version the pickle was written with. Only that JSON is stored: a snapshot is hostile
  input and never holds or unpickles a pickle. A file whose name does not say pickle is never loaded.
* ``json``: parsed here (stdlib, safe); a top-level ``feature_order`` list is recorded, and every other
  small top-level value (at most 8 KiB as JSON), with values under secret-looking keys redacted.
* anything else: hash and size, format guessed from the extension.

A missing, unreadable or non-regular file is the user's mistake: the probe fails with an error naming
every such path (the snapshot is still written). A model that cannot be loaded (no joblib or sklearn in
the target, a corrupt pickle, a timeout) is a value: ``metadata`` is null and ``metadata_error`` says why.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from envsnap._target import TargetError, run_json
from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.core.hashing import hash_file
from envsnap.core.redact import is_secret_name
from envsnap.errors import EnvsnapError

__all__ = [
    "ArtifactError",
    "ArtifactsProbe",
    "artifact_names",
    "detect_format",
    "json_metadata",
    "load_in_target",
    "target_executable",
]

LOAD_TIMEOUT_S = 120
JSON_PARSE_LIMIT = 16 << 20
SMALL_JSON_VALUE = 8 << 10
MAX_FEATURES = 100_000
NAME_LIMIT = 100

PICKLE_SUFFIXES = {".joblib": "joblib", ".pkl": "pickle", ".pickle": "pickle"}
#: Formats recognised by extension only (hash and size recorded, nothing loaded).
EXTENSION_FORMATS = {
    ".onnx": "onnx", ".pt": "pytorch", ".pth": "pytorch", ".safetensors": "safetensors", ".h5": "hdf5",
    ".keras": "keras", ".parquet": "parquet", ".csv": "csv", ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml", ".txt": "text", ".npy": "npy", ".npz": "npz", ".xgb": "xgboost", ".ubj": "xgboost",
    ".lgb": "lightgbm", ".cbm": "catboost", ".zip": "zip", ".tar": "tar", ".gz": "gzip",
}  # fmt: skip
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ArtifactError(EnvsnapError, ValueError):
    """One or more ``--artifact`` paths cannot be read; ``problems`` maps each path to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{path}: {problem}" for path, problem in problems.items()))
        self.problems = dict(problems)

    def __str__(self) -> str:
        listed = "; ".join(f"artifact {path}: {problem}" for path, problem in self.problems.items())
        return f"{listed}; pass readable files to --artifact"


def artifact_names(paths: list[str]) -> list[str]:
    """A unique, member-safe NAME per path, from its file name (``model.joblib``, ``model-2.joblib``).

    Only letters, digits, ``-``, ``_`` and ``.``; no leading dot; ``index`` is reserved for the index.
    """
    names: list[str] = []
    taken: set[str] = {"index"}
    for path in paths:
        base = _UNSAFE.sub("_", os.path.basename(os.path.normpath(path))).lstrip(".")[:NAME_LIMIT] or "artifact"
        stem, dot, suffix = base.partition(".")
        name, counter = base, 1
        while name.lower() in taken:
            counter += 1
            name = f"{stem}-{counter}{dot}{suffix}"
        taken.add(name.lower())
        names.append(name)
    return names


def detect_format(path: str) -> str:
    """The artifact's format from its file name: joblib, pickle, json, a known extension, or unknown."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in suffixes:
        if suffix in PICKLE_SUFFIXES:
            return PICKLE_SUFFIXES[suffix]
    if suffixes and suffixes[-1] == ".json":
        return "json"
    if suffixes and suffixes[-1] in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[suffixes[-1]]
    return "unknown"


def _redact_secret_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "<redacted:key>" if is_secret_name(str(key)) else _redact_secret_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_secret_keys(item) for item in value]
    return value


def json_metadata(path: str, size: int) -> dict[str, Any]:
    """``feature_order`` and the small top-level values of a JSON document (config or model sidecar)."""
    if size > JSON_PARSE_LIMIT:
        raise ValueError(f"larger than {JSON_PARSE_LIMIT >> 20} MiB; recorded by hash only")
    with open(path, "rb") as fh:
        document = json.loads(fh.read())
    if not isinstance(document, dict):
        length = len(document) if isinstance(document, list) else None
        return {"type": type(document).__name__, "length": length}
    out: dict[str, Any] = {"type": "object", "keys": sorted(str(k) for k in document)[:1000]}
    order = document.get("feature_order")
    if isinstance(order, list) and all(isinstance(f, str) for f in order) and len(order) <= MAX_FEATURES:
        out["feature_order"] = order
    values: dict[str, Any] = {}
    omitted: list[str] = []
    for key, value in document.items():
        if key == "feature_order" and "feature_order" in out:
            continue
        if is_secret_name(str(key)):
            values[str(key)] = "<redacted:key>"
            continue
        try:
            encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except ValueError:  # NaN/Infinity (Python's json reads them): not storable as canonical JSON
            encoded = None
        if encoded is None or len(encoded) > SMALL_JSON_VALUE:
            omitted.append(str(key))
        else:
            values[str(key)] = _redact_secret_keys(value)
    out["values"] = values
    out["omitted"] = sorted(omitted)
    return out


def target_executable(ctx: CaptureContext) -> str:
    """The interpreter that loads pickles: ``--python``'s, or envsnap's own when capturing in process."""
    if ctx.options.python is not None:
        from envsnap.capture.target import resolve_interpreter

        return resolve_interpreter(ctx.options.python)
    return sys.executable


def load_in_target(executable: str, paths: list[str], *, cwd: str, environ: dict[str, str]) -> dict[str, Any]:
    """Run the model loader in ``executable`` on ``paths``: ``{"loaded_by": {...}, "results": {...}}``.

    Raises :class:`~envsnap._target.TargetError` when the interpreter cannot answer at all; a file that
    does not load is reported per path in ``results``.
    """
    return run_json(
        "the model loader",
        executable,
        "artifact_load",
        paths,
        expect={"results": dict},
        timeout=LOAD_TIMEOUT_S,
        environ=environ,
        cwd=cwd if os.path.isdir(cwd) else None,  # the job's own modules (custom transformers) import from there
    )


def _load_error(executable: str, result: dict[str, Any]) -> str:
    missing = result.get("missing_module")
    if missing:
        top = str(missing).split(".", 1)[0]
        return (
            f"cannot load with {executable}: it has no module '{top}'; "
            "capture with --python pointing at the job's interpreter (the one that made the model)"
        )
    return f"cannot load with {executable}: {result.get('error') or 'unknown error'}"


@register
class ArtifactsProbe(Probe):
    """Hash, size, format and parity metadata of each ``--artifact`` file."""

    name = "artifacts"
    member = "artifacts/index.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return bool(ctx.options.artifacts)

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        given = list(ctx.options.artifacts)
        names = artifact_names(given)
        records: dict[str, dict[str, Any]] = {}
        problems: dict[str, str] = {}
        for name, path in zip(names, given, strict=True):
            resolved = os.path.realpath(os.path.join(ctx.options.cwd, os.path.expanduser(path)))
            try:
                mode = os.stat(resolved).st_mode
                if not stat.S_ISREG(mode):
                    problems[path] = "is a directory" if stat.S_ISDIR(mode) else "is not a regular file"
                    continue
                sha256, size = hash_file(resolved)
            except OSError as exc:
                problems[path] = "does not exist" if isinstance(exc, FileNotFoundError) else str(exc.strerror or exc)
                continue
            records[name] = {
                "name": name,
                "path": path,
                "resolved": resolved,
                "size": size,
                "sha256": sha256,
                "format": detect_format(resolved),
                "metadata": None,
                "metadata_error": None,
            }
        if problems:
            raise ArtifactError(problems)
        self._describe_pickles(ctx, records)
        for record in records.values():
            if record["format"] == "json":
                try:
                    record["metadata"] = json_metadata(record["resolved"], record["size"])
                except (ValueError, OSError) as exc:
                    record["metadata_error"] = f"not read as JSON: {exc}"[:2000]
        index = {
            "artifacts": {
                name: {"path": rec["path"], "member": f"artifacts/{name}.json"} for name, rec in records.items()
            }
        }
        extra: dict[str, Any] = {f"artifacts/{name}.json": record for name, record in records.items()}
        return ProbeOutput(index, extra=extra)

    @staticmethod
    def _describe_pickles(ctx: CaptureContext, records: dict[str, dict[str, Any]]) -> None:
        pickles = [rec for rec in records.values() if rec["format"] in ("joblib", "pickle")]
        if not pickles:
            return
        executable = target_executable(ctx)
        paths = sorted({rec["resolved"] for rec in pickles})
        try:
            answer = load_in_target(executable, paths, cwd=ctx.options.cwd, environ=dict(ctx.options.environ))
        except TargetError as exc:
            for rec in pickles:
                rec["metadata_error"] = str(exc)
            return
        loaded_by = answer.get("loaded_by")
        for rec in pickles:
            result = answer["results"].get(rec["resolved"])
            if not isinstance(result, dict):
                rec["metadata_error"] = f"{executable} did not answer for this file"
            elif isinstance(result.get("metadata"), dict):
                rec["metadata"] = {**result["metadata"], "loaded_by": loaded_by}
            else:
                rec["metadata_error"] = _load_error(executable, result)
