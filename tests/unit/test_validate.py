"""envsnap's compiled validator (envsnap/snapshot/validate.py) against jsonschema, the reference.

Real members come from a real capture (with a sampled input and a JSON artifact), two real pipeline runs
(one passing, one with a failing stage), a real diff document, and the GPU-host fixture. Hypothesis then
mutates them; both validators must agree on valid/invalid and, when invalid, on the reported field and
message (jsonschema's ``best_match``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

import envsnap
from envsnap.capture import capture
from envsnap.diff import diff
from envsnap.diff.render import render
from envsnap.errors import SchemaError
from envsnap.snapshot.schema import ERROR_SCHEMA, field_path, load_schema, schema_name, validate_member
from envsnap.snapshot.validate import ANNOTATIONS, KEYWORDS, CompiledSchema, UnsupportedSchemaError, compile_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted((ROOT / "envsnap" / "snapshot" / "schemas").glob("*.json"))
DIFF_SCHEMA = ROOT / "envsnap" / "diff" / "render" / "diff.schema.json"
GPU_FIXTURE = ROOT / "fixtures" / "gpu" / "h200-capture.envsnap"

Case = tuple[str, dict[str, Any], Any]  # (label, schema, instance)


def _schema_for(member: str, data: Any) -> str:
    return ERROR_SCHEMA if isinstance(data, dict) and set(data) == {"error"} else schema_name(member)


def _snapshot_members(directory: Path) -> Iterator[tuple[str, Any]]:
    for path in sorted(directory.rglob("*.json")):
        yield path.relative_to(directory).as_posix(), json.loads(path.read_text(encoding="utf-8"))


def _zip_members(archive: Path) -> Iterator[tuple[str, Any]]:
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(".json"):
                yield name, json.loads(zf.read(name))


def _events() -> pa.Table:
    return pa.table(
        {
            "user": pa.array([f"u{i % 7}" for i in range(60)]),
            "amount": pa.array([float(i) * 1.5 if i % 9 else None for i in range(60)]),
            "day": pa.array([i % 5 for i in range(60)], pa.int32()),
        }
    )


def _pipeline(fail: bool) -> envsnap.pipeline.Pipeline:
    pipeline = envsnap.pipeline.Pipeline("tiny", accepts="arrow")

    @pipeline.stage()
    def clean(table: pa.Table) -> pa.Table:
        return table.filter(pa.compute.is_valid(table["amount"]))

    @pipeline.stage()
    def double(table: pa.Table) -> pa.Table:
        if fail:
            raise RuntimeError("stage failed on purpose")
        return table.set_column(1, "amount", pa.compute.multiply(table["amount"], 2))

    return pipeline


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    tmp = tmp_path_factory.mktemp("members")
    (tmp / "model.json").write_text(json.dumps({"n_features": 3, "labels": ["a", "b"]}), encoding="utf-8")
    captured = capture(tmp / "captured", git=False, inputs={"events": _events()}, artifacts=["model.json"], cwd=tmp)
    ran = envsnap.run_pipeline(_pipeline(fail=False), inputs={"events": _events()}, output=tmp / "ran", git=False)
    failed = envsnap.run_pipeline(_pipeline(fail=True), inputs={"events": _events()}, output=tmp / "failed", git=False)
    assert failed.status != ran.status  # the failing run really recorded a failure
    members: list[tuple[str, str, Any]] = []
    for label in ("captured", "ran", "failed"):
        members += [(f"{label}:{m}", m, d) for m, d in _snapshot_members(tmp / label)]
    members += [(f"h200:{m}", m, d) for m, d in _zip_members(GPU_FIXTURE)]
    out: list[Case] = []
    for label, member, data in members:
        schema = load_schema(_schema_for(member, data))
        if schema is not None:
            out.append((label, schema, data))
    document = json.loads(render(diff(captured, ran.snapshot), "json"))
    out.append(("diff-document", json.loads(DIFF_SCHEMA.read_text(encoding="utf-8")), document))
    return out


def _compiled(schema: Any) -> CompiledSchema:
    return compile_schema(schema)


def _reference(schema: Any) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema)


def _assert_agree(schema: Any, instance: Any, label: str) -> bool:
    """Both validators give the same verdict and, when invalid, the same field and message."""
    ours = _compiled(schema).first_error(instance)
    theirs = best_match(_reference(schema).iter_errors(instance))
    assert (ours is None) == (theirs is None), (label, ours, theirs and theirs.message)
    if ours is not None and theirs is not None:
        assert field_path(ours.path) == field_path(theirs.absolute_path), label
        assert ours.message == theirs.message, label
    return ours is None


# --- compilation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*SCHEMA_FILES, DIFF_SCHEMA], ids=lambda p: p.name)
def test_every_shipped_schema_compiles(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    compiled = compile_schema(schema)
    assert not compiled.is_valid(["surely", "not", "a", "member"])  # every shipped schema is an object type


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "format": "date-time"},
        {"properties": {"a": {"type": "object", "minProperties": 1}}},
        {"items": {"$ref": "other.json#/x"}},
        {"anyOf": [{"type": "string"}, {"contains": {"const": 1}}]},
        {"then": {"type": "string"}},
        {"allOf": [{"type": "string"}]},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"},
        {"type": "decimal"},
    ],
)
def test_an_unimplemented_rule_fails_at_compile_time(schema: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_schema(schema)


def test_keyword_set_is_exactly_what_the_schemas_use() -> None:
    used: set[str] = set()

    def walk(node: Any, in_map: bool) -> None:
        if isinstance(node, dict):
            if not in_map:
                used.update(node)
            for key, value in node.items():
                walk(value, in_map=not in_map and key in ("properties", "patternProperties", "$defs"))
        elif isinstance(node, list):
            for item in node:
                walk(item, in_map=False)

    for path in [*SCHEMA_FILES, DIFF_SCHEMA]:
        walk(json.loads(path.read_text(encoding="utf-8")), in_map=False)
    assert used <= KEYWORDS | ANNOTATIONS
    assert (KEYWORDS | ANNOTATIONS) - used == set()  # nothing implemented that no schema needs


# --- JSON semantics, hand-written schemas, each checked against jsonschema --------------------------------

TREE = {
    "$defs": {"tree": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}},
    "$ref": "#/$defs/tree",
}
SEMANTICS: list[tuple[Any, Any, bool]] = [
    ({"type": "integer"}, 1, True),
    ({"type": "integer"}, 1.0, True),
    ({"type": "integer"}, 1.5, False),
    ({"type": "integer"}, True, False),
    ({"type": "number"}, 3, True),
    ({"type": "number"}, False, False),
    ({"type": ["integer", "null"], "minimum": 0}, -1, False),
    ({"type": ["integer", "null"], "minimum": 0}, None, True),
    ({"minimum": 0}, True, True),  # minimum only looks at numbers, and a boolean is not one
    ({"exclusiveMinimum": 0}, 0, False),
    ({"maximum": 2}, 2.5, False),
    ({"enum": [1, "a"]}, True, False),
    ({"enum": [1, "a"]}, 1.0, True),
    ({"const": [1, {"a": None}]}, [1.0, {"a": None}], True),
    ({"const": False}, 0, False),
    ({"uniqueItems": True}, [1, 1.0], False),
    ({"uniqueItems": True}, [1, True], True),
    ({"uniqueItems": True}, [{"a": [1]}, {"a": [1]}], False),
    ({"type": "string", "pattern": "^[a-z]+$"}, "abc1", False),
    ({"pattern": "b"}, "abc", True),  # unanchored, like re.search
    ({"minLength": 2}, 5, True),
    ({"maxLength": 1}, "é", True),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, ["a", 1], False),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", 1, 2], True),
    ({"minItems": 1, "maxItems": 1}, [], False),
    ({"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False}, {"x-a": 1}, True),
    ({"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False}, {"y": 1}, False),
    ({"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False}, {"x-a": "1"}, False),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "string"}}, {"a": 1, "b": 2}, False),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"abc": 1, "B": 2}, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 3, False),  # valid under both: oneOf fails
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, -3, True),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, 3, False),
    ({"not": {"type": "null"}}, None, False),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"required": ["c"]}}, {"a": 1}, False),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"required": ["c"]}}, {"c": 1}, True),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {}, True),
    ({"required": ["a", "b"], "properties": {"b": {"type": "string"}}}, {"b": 1}, False),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {"a": "x", "b": 1},
        False,
    ),
    (TREE, {"kids": [{"kids": []}, {"kids": [{"kids": 3}]}]}, False),  # a recursive $ref
    (False, 1, False),
    (True, {"anything": [1]}, True),
]


@pytest.mark.parametrize(("schema", "instance", "valid"), SEMANTICS)
def test_json_semantics_match_jsonschema(schema: Any, instance: Any, valid: bool) -> None:
    assert _assert_agree(schema, instance, repr(schema)) is valid


# --- real members -------------------------------------------------------------------------------------------


def test_real_members_validate_like_jsonschema(cases: list[Case]) -> None:
    covered = set()
    for label, schema, instance in cases:
        assert _assert_agree(schema, instance, label), label  # real members are valid for both
        covered.add(schema.get("title") or label)
    names = {label.split(":", 1)[1] for label, _, _ in cases if ":" in label}
    # Every kind of member the brief asks for is in the corpus, so the agreement above means something.
    assert {"manifest.json", "env/packages.json", "env/sbom.cdx.json", "env/gpu.json", "data/inputs.json"} <= names
    assert {"pipeline/pipeline.json", "artifacts/index.json", "job/command.json"} <= names
    assert any(n.startswith("pipeline/stages/") for n in names) and any(n.startswith("data/inputs/") for n in names)
    assert any(n.startswith("artifacts/") and n != "artifacts/index.json" for n in names)


def test_validate_member_raises_schema_error_naming_the_field(cases: list[Case]) -> None:
    _, _, packages = next(c for c in cases if c[0] == "captured:env/packages.json")
    broken = copy.deepcopy(packages)
    broken["distributions"][2]["version"] = 7
    with pytest.raises(SchemaError) as info:
        validate_member("snap", "env/packages.json", broken)
    assert info.value.field == "$.distributions[2].version"
    assert "7 is not of type 'string'" in str(info.value)
    validate_member("snap", "env/packages.json", packages)  # the real one passes


def test_reading_a_snapshot_never_imports_jsonschema() -> None:
    code = (
        "import sys, envsnap\n"
        f"snap = envsnap.load({str(GPU_FIXTURE)!r})\n"
        "snap.verify()\n"
        "assert snap.section('packages')['distributions']\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'rfc3987_syntax', 'lark')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- mutations ----------------------------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


REPLACEMENTS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    -2.5,
    1.0,
    7,
    "",
    "x",
    "NOT A valid/pattern!",
    [],
    [1],
    {},
    {"k": 1},
]
KINDS = ("delete", "replace", "add-key", "empty-string", "negative", "enum-miss", "bool-for-int", "duplicate-item")


def _mutate(instance: Any, path: tuple[Any, ...], kind: str, replacement: Any) -> Any:
    """A copy of ``instance`` with one change at ``path``; only the containers on the path are copied."""
    root = copy.copy(instance)
    parent, node = None, root
    for part in path:
        child = copy.copy(node[part])
        node[part] = child
        parent, node = node, child
    last = path[-1] if path else None
    if kind == "delete" and parent is not None:
        del parent[last]
    elif kind == "add-key" and isinstance(node, dict):
        node["unexpected_key"] = replacement
    elif kind == "duplicate-item" and isinstance(node, list) and node:
        node.append(copy.deepcopy(node[0]))
    elif parent is None:
        return replacement
    elif kind == "empty-string":
        parent[last] = ""
    elif kind == "negative":
        parent[last] = -1
    elif kind == "enum-miss":
        parent[last] = "zz-not-a-known-value"
    elif kind == "bool-for-int":
        parent[last] = True if isinstance(node, int | float) and not isinstance(node, bool) else 1.0
    else:
        parent[last] = replacement
    return root


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_members_agree_with_jsonschema(cases: list[Case], data: st.DataObject) -> None:
    label, schema, instance = data.draw(st.sampled_from(cases), label="member")
    paths = list(_paths(instance))
    path = data.draw(st.sampled_from(paths), label="path")
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    replacement = data.draw(st.sampled_from(REPLACEMENTS), label="replacement")
    mutated = _mutate(instance, path, kind, replacement)
    _assert_agree(schema, mutated, f"{label} {kind} at {path}")


def test_mutations_do_break_members(cases: list[Case]) -> None:
    """The mutation kinds make real members invalid (so the agreement test compares real failures)."""
    _, schema, packages = next(c for c in cases if c[0] == "captured:env/packages.json")
    first = ("distributions", 0)
    for path, kind in [
        ((*first, "version"), "delete"),
        ((*first,), "add-key"),
        ((*first, "location_kind"), "enum-miss"),
        ((*first, "normalized_name"), "empty-string"),
        ((*first, "version"), "bool-for-int"),
    ]:
        assert not _assert_agree(schema, _mutate(packages, path, kind, 1), f"{kind} at {path}"), (kind, path)
    assert _assert_agree(schema, packages, "original")  # and the copy-on-path left the original intact
