"""The pipeline's snapshot members: ``pipeline/pipeline.json`` and ``pipeline/stages/NN-NAME.{parquet,json}``
(``NN-NAME.K.parquet`` for the elements of a returned tuple).

A stage record carries the intermediate's schema, row count and column stats, the stage's wall time and
peak memory (null with ``--reproducible``: they differ run to run), the top-level modules imported while
it ran mapped to the distributions that provide them (from ``top_level`` in ``env/packages.json``), and
the error when it failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envsnap._target import PACKAGE
from envsnap.pipeline.types import PipelineSpec
from envsnap.pipeline.values import record_facts

if TYPE_CHECKING:
    from envsnap.pipeline.execution import Intermediate

__all__ = [
    "PIPELINE_MEMBER",
    "CodeFiles",
    "distribution_names",
    "distributions_by_module",
    "map_modules",
    "member_stem",
    "pipeline_record",
    "received_inputs",
    "stage_outputs",
    "stage_record",
]

STAGES_DIR = "pipeline/stages"
PIPELINE_MEMBER = "pipeline/pipeline.json"
#: Modules that are never a distribution: the interpreter's own and the runner's.
_NOT_DISTRIBUTIONS = frozenset({"__main__", "__mp_main__", PACKAGE, "_distutils_hack"})


def member_stem(index: int, name: str) -> str:
    """``pipeline/stages/01-clean`` (add ``.parquet`` / ``.json``)."""
    return f"{STAGES_DIR}/{index:02d}-{name}"


def distributions_by_module(packages: Any) -> dict[str, list[dict[str, str]]]:
    """Top-level import name -> ``[{name, version}]`` of the distributions that install it."""
    mapping: dict[str, list[dict[str, str]]] = {}
    if not isinstance(packages, dict):
        return mapping
    for dist in packages.get("distributions") or ():
        for top in dist.get("top_level") or ():
            mapping.setdefault(top, []).append({"name": dist["normalized_name"], "version": dist["version"]})
    for dists in mapping.values():
        dists.sort(key=lambda d: (d["name"], d["version"]))
    return mapping


def map_modules(modules: Iterable[str], mapping: Mapping[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """``[{module, distributions}]`` for the non-stdlib top-level modules; a local module has no distribution."""
    stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    out = []
    for module in sorted(set(modules)):
        if module in stdlib or module in _NOT_DISTRIBUTIONS or module in sys.builtin_module_names:
            continue
        if module.startswith("__"):  # __editable___*_finder, __future__, ...: import machinery, not code
            continue
        out.append({"module": module, "distributions": mapping.get(module, [])})
    return out


def distribution_names(modules: Iterable[str], mapping: Mapping[str, list[dict[str, str]]]) -> list[str]:
    """Sorted distribution names behind ``modules``."""
    return sorted({d["name"] for entry in map_modules(modules, mapping) for d in entry["distributions"]})


class CodeFiles:
    """The project files each stage imported, as the stage records list them: ``[{path, sha256}]``.

    Paths are relative to the code map's root (``code/index.json``), hashes are the index's; a stage run
    without a code map (its probe failed) lists the files it can place with no hash.
    """

    def __init__(self, index: Any, git: Any, code_files: Iterable[tuple[str, Iterable[str]]]) -> None:
        from envsnap.capture.source_files import project_root, relative_files

        every = [f for _, files in code_files for f in files]
        recorded = index.get("root") if isinstance(index, dict) else None
        self.root = recorded if isinstance(recorded, str) and recorded else project_root(git, None, every)
        self.hashes: dict[str, str | None] = {}
        if isinstance(index, dict) and isinstance(index.get("files"), list):
            self.hashes = {str(f.get("path")): f.get("sha256") for f in index["files"] if isinstance(f, dict)}
        self.relative = relative_files(every, self.root)

    @classmethod
    def of(cls, index: Any, git: Any, code_files: Iterable[tuple[str, Iterable[str]]]) -> CodeFiles:
        return cls(index, git, code_files)

    def of_stage(self, outcome: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """``[{path, sha256}]`` of the project files ``outcome``'s stage imported (None: not recorded)."""
        files = outcome.get("imported_files")
        if files is None:
            return None
        out = []
        for path in files:
            relative = self.relative.get(path)
            if relative is not None and relative.endswith(".py"):
                out.append({"path": relative, "sha256": self.hashes.get(relative)})
        return sorted(out, key=lambda f: str(f["path"]))


def stage_record(
    outcome: Mapping[str, Any],
    stage_def: Mapping[str, Any],
    *,
    received: list[str],
    intermediates: Mapping[str, Intermediate],
    mapping: Mapping[str, list[dict[str, str]]],
    reproducible: bool,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``NN-NAME.json`` record of one stage that ran.

    ``intermediates``: the run's recorded outputs by member stem (``NN-LABEL``); this stage's are its own
    (``NN-NAME``) or, for a returned tuple, one per element (``NN-NAME.K``). ``files``: the project's
    source files it imported (``[{path, sha256}]``, minor 3; left out when None). Minor 4 adds
    ``params``, ``value`` (the kind and facts of what it returned; see docs/format.md) and ``fitted``.
    """
    index, name = int(outcome["index"]), str(outcome["name"])
    main = intermediates.get(f"{index:02d}-{name}") if outcome.get("status") == "ok" else None
    modules = outcome.get("imported_modules")
    record = {
        "index": index,
        "name": name,
        "kind": outcome["kind"],
        "status": outcome["status"],
        "call": stage_def.get("call"),
        "run": stage_def.get("run"),
        "inputs": received,
        "params": outcome.get("params", stage_def.get("params")),
        "returned": outcome.get("returned"),
        "value": _value_record(outcome, intermediates),
        "parquet": f"{member_stem(index, name)}.parquet" if main is not None else None,
        "rows": main.rows if main is not None else None,
        "schema": main.schema if main is not None else None,
        "columns": main.columns if main is not None else None,
        "fitted": outcome.get("fitted"),
        "load_time_s": None if reproducible else outcome.get("load_time_s"),
        "wall_time_s": None if reproducible else outcome.get("wall_time_s"),
        "memory": None if reproducible else outcome.get("memory"),
        "imports": map_modules(modules, mapping) if modules is not None else None,
        "command": outcome.get("command"),
        "error": outcome.get("error"),
    }
    if files is not None:
        record["files"] = files
    return record


def _value_record(outcome: Mapping[str, Any], intermediates: Mapping[str, Intermediate]) -> dict[str, Any] | None:
    """The record's ``value``: the kind and its facts; a tuple lists each element with its own member."""
    value = outcome.get("value")
    if outcome.get("status") != "ok" or not isinstance(value, Mapping):
        return None
    if value.get("kind") != "tuple":
        return record_facts(value)
    index, name = int(outcome["index"]), str(outcome["name"])
    elements = []
    for position, element in enumerate(value.get("elements") or ()):
        label = f"{name}.{position}"
        kept = intermediates.get(f"{index:02d}-{label}")
        elements.append(
            {
                "index": position,
                "label": label,
                "parquet": f"{member_stem(index, label)}.parquet" if kept is not None else None,
                "rows": kept.rows if kept is not None else None,
                "schema": kept.schema if kept is not None else None,
                "columns": kept.columns if kept is not None else None,
                "value": record_facts(element),
            }
        )
    return {"kind": "tuple", "elements": elements}


def stage_outputs(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``(label, parquet member)`` of every recorded output of one stage record (any format minor).

    One for most values, one per element (``NAME.K``) for a returned tuple, none for a stage that returned
    None or failed (a record before minor 4 has its one ``parquet``).
    """
    value = record.get("value")
    if isinstance(value, Mapping) and value.get("kind") == "tuple":
        return [(str(e.get("label")), e.get("parquet")) for e in value.get("elements") or () if isinstance(e, Mapping)]
    if isinstance(value, Mapping) and value.get("kind") == "none":
        return []
    if record.get("status") not in (None, "ok"):
        return []
    return [(str(record.get("name")), record.get("parquet"))]


def received_inputs(pipeline: PipelineSpec, input_names: list[str]) -> list[list[str]]:
    """What each stage receives, by name: its declared inputs, else the previous stage (or the only input)."""
    out = []
    previous = input_names[0] if len(input_names) == 1 else None
    for stage in pipeline.stages:
        if stage.inputs is not None:
            out.append(list(stage.inputs))
        else:
            out.append([previous] if previous is not None else [])
        previous = stage.name
    return out


def pipeline_record(
    pipeline: PipelineSpec,
    *,
    input_names: list[str],
    outcomes: Sequence[Mapping[str, Any]],
    not_run_reason: str | None,
    runner: Mapping[str, Any],
) -> dict[str, Any]:
    """``pipeline/pipeline.json``: the definition in order, how each stage ended, and how the runner ran."""
    ended = {o["index"]: o for o in outcomes}
    stages = []
    failed = None
    for index, stage in enumerate(pipeline.stages, 1):
        entry = stage.to_dict()
        outcome = ended.get(index)
        entry["index"] = index
        entry["status"] = outcome["status"] if outcome else "not-run"
        entry["record"] = f"{member_stem(index, stage.name)}.json" if outcome else None
        if outcome and outcome["status"] != "ok" and failed is None:
            failed = stage.name
        stages.append(entry)
    if not_run_reason is not None:
        status = "not-run"
    elif failed is not None:
        status = "failed"
    else:
        status = "ok"
    failure = next((o.get("error") for o in outcomes if o.get("error")), None)
    return {
        "name": pipeline.name,
        "source": pipeline.source,
        "accepts": pipeline.accepts,
        "inputs": input_names,
        "stages": stages,
        "status": status,
        "failed_stage": failed,
        "error": not_run_reason if not_run_reason is not None else (failure or {}).get("message"),
        "runner": dict(runner),
        # minor 1: where the stages ran and what went in front of sys.path, so that replay can rebuild
        # the same layout from the recorded commit.
        "root": pipeline.root,
        "pythonpath": list(pipeline.pythonpath),
    }
