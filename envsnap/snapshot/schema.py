"""JSON Schemas of the snapshot members, shipped in the package and checked on read.

Schemas live in ``envsnap/snapshot/schemas/``; a member ``env/packages.json`` is checked against
``env.packages.schema.json`` (slashes become dots). Members without a schema file (text, parquet) are
only hash-checked. Validation never checks ``format`` keywords: that is where cyclonedx spends seconds.

Validation runs on :mod:`envsnap.snapshot.validate`, a compiled validator for exactly the keywords these
schemas use, not jsonschema: importing jsonschema alone can cost 0.7 s, and it took ~40 ms per 300-package
member. Errors are the ones jsonschema's ``best_match`` reports (the tests compare both).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from envsnap.errors import SchemaError
from envsnap.snapshot.validate import CompiledSchema, compile_schema

__all__ = ["ERROR_SCHEMA", "compiled_schema", "field_path", "load_schema", "schema_name", "validate_member"]

ERROR_SCHEMA = "probe-error.schema.json"


#: Members whose last component is a user-chosen NAME share one schema: (directory, fixed names).
_NAMED_MEMBERS = (("data/inputs", ()), ("pipeline/stages", ()), ("artifacts", ("index.json",)))


def schema_name(member: str) -> str:
    """The schema file name for ``member``: ``env/packages.json`` -> ``env.packages.schema.json``.

    ``data/inputs/events.json`` -> ``data.inputs.NAME.schema.json`` (likewise for stage intermediates'
    records and artifacts), since their file names are chosen by the user. A fleet's
    ``nodes/<key>/env/python.json`` shares the schema of ``env/python.json``.
    """
    if member.startswith("nodes/") and member.count("/") >= 2:
        # A fleet's node group (nodes/<key>/env/python.json) is checked as that member of a snapshot.
        return schema_name(member.split("/", 2)[2])
    stem = member.rsplit(".", 1)[0] if member.endswith(".json") else member
    directory, _, base = member.rpartition("/")
    for prefix, fixed in _NAMED_MEMBERS:
        if directory == prefix and member.endswith(".json") and base not in fixed:
            return prefix.replace("/", ".") + ".NAME.schema.json"
    return stem.replace("/", ".") + ".schema.json"


@cache
def load_schema(name: str) -> dict[str, Any] | None:
    """Load a shipped schema by file name, or None when there is none."""
    ref = resources.files("envsnap.snapshot").joinpath("schemas", name)
    if not ref.is_file():
        return None
    loaded: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    return loaded


@cache
def compiled_schema(name: str) -> CompiledSchema | None:
    """The shipped schema ``name`` compiled once per process, or None when there is none."""
    schema = load_schema(name)
    return None if schema is None else compile_schema(schema)


def field_path(parts: Any) -> str:
    """Render an error path (keys and indexes, as jsonschema's ``absolute_path``) as ``$.a.b[0]``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_member(snapshot_path: str, member: str, data: Any) -> None:
    """Check ``data`` against the schema of ``member``; raise :class:`SchemaError` naming the bad field.

    A probe that failed stores ``{"error": {...}}`` in its member; that shape is accepted for any member.
    """
    if isinstance(data, dict) and set(data) == {"error"}:
        name = ERROR_SCHEMA
    else:
        name = schema_name(member)
    validator = compiled_schema(name)
    if validator is None:
        return
    error = validator.first_error(data)
    if error is not None:
        raise SchemaError(snapshot_path, member, field_path(error.path), error.message)
