"""Stage values on the host: every kind's recorded form, whatever the job's interpreter could write.

The runner (:mod:`envsnap._target.runner.values`, one module per kind behind one registry) hands each
value over as parquet where the job's interpreter has pyarrow (or polars, for its own frames), else in the
kind's native form (``.npy``, a ``.columns`` directory, ``.npz``, JSON). :func:`normalize` turns whatever
came back into ``NN-LABEL.parquet`` beside it, so that everything downstream (the snapshot, replay's
compare, check, shrink) reads one form. :func:`record_facts` is what the stage record keeps of a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsnap._target.runner import values as kinds

__all__ = ["Output", "arrow_of", "normalize", "record_facts"]

#: Facts of the hand-over, not of the value: never recorded.
_TRANSPORT = ("file", "form", "label", "index")


@dataclass(frozen=True)
class Output:
    """One recorded output of a stage: ``label`` (the stage name, or ``NAME.K`` for a tuple element), the
    parquet file of its table form, and its facts as the stage record keeps them."""

    label: str
    path: Path
    value: dict[str, Any]


def record_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """``facts`` without the hand-over details (file name, form)."""
    return {k: v for k, v in facts.items() if k not in _TRANSPORT}


def arrow_of(facts: Mapping[str, Any], path: Path | None = None, value: Any = None) -> Any:
    """The table form of a value: from the live ``value`` (in-process) or from ``path`` (its hand-over file).

    A dict's and an estimator's table is always built from their facts (the dict's data, which the caller
    has already redacted), whichever form was handed over.
    """
    kind = str(facts["kind"])
    if value is not None or kind in ("dict", "estimator"):
        return kinds.table(value, kind, dict(facts))
    if path is None:
        raise ValueError(f"a {kind} value has neither its object nor its file")
    return kinds.from_file(str(path), str(facts.get("form") or "parquet"), dict(facts))


def normalize(out_dir: Path, outcome: Mapping[str, Any], redact: Any = None) -> list[Output]:
    """The outputs of one finished stage as ``out_dir/NN-LABEL.parquet`` (converted when written otherwise).

    ``redact`` (plain JSON -> plain JSON) is applied to a dict's data before its table is built.
    Returns nothing for a failed stage or one that returned None.
    """
    value = outcome.get("value")
    if outcome.get("status") != "ok" or not isinstance(value, Mapping) or value.get("kind") == "none":
        return []
    index, name = int(outcome["index"]), str(outcome["name"])
    if value.get("kind") == "tuple":
        items = [(str(e.get("label") or f"{name}.{e.get('index')}"), e) for e in value.get("elements") or []]
    else:
        items = [(name, value)]
    outputs = []
    for label, handed in items:
        facts = dict(handed)
        if facts.get("kind") == "dict" and redact is not None and facts.get("data") is not None:
            facts["data"] = redact(facts["data"])
        target = out_dir / f"{index:02d}-{label}.parquet"
        source = out_dir / str(facts.get("file") or target.name)
        converted = facts.get("kind") == "dict" or facts.get("form", "parquet") != "parquet" or source != target
        if converted:
            import pyarrow.parquet as pq

            table = arrow_of(facts, source)
            partial = target.with_name(target.name + ".partial")
            pq.write_table(table, partial)
            os.replace(partial, target)
            facts["rows"] = int(table.num_rows)
        outputs.append(Output(label, target, record_facts(facts)))
    return outputs
