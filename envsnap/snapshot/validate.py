"""A small, fast JSON Schema (draft 2020-12) validator for the keywords envsnap's own schemas use.

Why not jsonschema at read time: importing it costs ~0.7 s wherever its optional ``rfc3987_syntax`` is
installed (a lark grammar is built at import), and it spends ~40 ms on a 300-package ``env/packages.json``.
Here each schema is compiled once into nested closures: a boolean ``check`` for the common, valid case, and
an ``errors`` generator, run only after ``check`` failed, that yields every violation like jsonschema's
``iter_errors`` so that :func:`best_violation` picks the same error jsonschema's ``best_match`` does (same
path, same message). The test suite keeps jsonschema as the reference and compares both on real members.

Only :data:`KEYWORDS` are understood; any other keyword raises :class:`UnsupportedSchemaError` when the
schema is compiled, so a rule can never be silently ignored. ``format`` is deliberately absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "ANNOTATIONS",
    "KEYWORDS",
    "Check",
    "CompiledSchema",
    "Errors",
    "Path",
    "UnsupportedSchemaError",
    "Violation",
    "best_violation",
    "compile_schema",
]

Check = Callable[[Any], bool]
Path = tuple[str | int, ...]
Errors = Callable[[Any, Path], Iterator["Violation"]]

#: Annotations: accepted and ignored (``$defs`` is reached through ``$ref``).
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs"})
#: Assertions and applicators this module implements.
KEYWORDS = frozenset(
    {
        "type", "enum", "const", "required", "properties", "patternProperties", "additionalProperties",
        "propertyNames", "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "minLength",
        "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "$ref", "anyOf", "oneOf",
        "not", "if", "then", "else",
    }
)  # fmt: skip
DRAFT = "https://json-schema.org/draft/2020-12/schema"


class UnsupportedSchemaError(ValueError):
    """A schema uses a keyword (or a form of one) this validator does not implement."""

    def __init__(self, pointer: str, problem: str) -> None:
        super().__init__(f"schema at '{pointer or '#'}': {problem}")
        self.pointer = pointer
        self.problem = problem


class Violation:
    """One failed assertion: where (instance path), which keyword, jsonschema's message, sub-errors."""

    __slots__ = ("context", "keyword", "matches_type", "message", "path")

    def __init__(self, path: Path, keyword: str | None, message: str, context: list[Violation] | None = None) -> None:
        self.path = path
        self.keyword = keyword
        self.message = message
        self.context = context or []
        #: Whether the instance matches the ``type`` of the schema holding ``keyword`` (set by that node).
        self.matches_type: bool | None = None

    def __repr__(self) -> str:
        return f"Violation({self.path!r}, {self.keyword!r}, {self.message!r})"


def _relevance(error: Violation) -> tuple[Any, ...]:
    # jsonschema.exceptions.by_relevance(): shallow errors first, then earlier siblings, anyOf/oneOf last.
    return (-len(error.path), error.path, error.keyword not in ("anyOf", "oneOf"), False, not error.matches_type)


def best_violation(errors: Iterator[Violation]) -> Violation | None:
    """The error jsonschema's ``best_match`` would pick from the same errors (its heuristic, step by step)."""
    best = max(errors, key=_relevance, default=None)
    while best is not None and best.context:
        ranked = sorted(best.context, key=_relevance)[:2]
        if len(ranked) == 2 and _relevance(ranked[0]) == _relevance(ranked[1]):
            return best
        best = ranked[0]
    return best


class CompiledSchema:
    """A schema compiled to closures: :meth:`is_valid` for speed, :meth:`first_error` for the report."""

    __slots__ = ("errors", "is_valid")

    def __init__(self, check: Check, errors: Errors) -> None:
        self.is_valid = check
        self.errors = errors

    def first_error(self, instance: Any) -> Violation | None:
        """None when valid, else the most relevant violation (as jsonschema's ``best_match``)."""
        if self.is_valid(instance):
            return None
        return best_violation(self.errors(instance, ()))


def compile_schema(schema: dict[str, Any] | bool) -> CompiledSchema:
    """Compile ``schema`` (refs resolve against it as the root); raise :class:`UnsupportedSchemaError`."""
    if isinstance(schema, dict) and schema.get("$schema", DRAFT) != DRAFT:
        raise UnsupportedSchemaError("", f"$schema {schema['$schema']!r} is not draft 2020-12")
    node = _Compiler(schema).node(schema, "")
    return CompiledSchema(node.check, node.errors)


# --- JSON semantics ---------------------------------------------------------------------------------------


def _is_integer(x: Any) -> bool:
    # 2020-12 (and jsonschema): 1.0 is an integer; True is not.
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "number": _is_number,
    "integer": _is_integer,
}
#: Exact Python types that certainly satisfy each JSON type (the fast path; subclasses take the slow one).
_EXACT: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "null": (type(None),), "boolean": (bool,),
    "number": (int, float), "integer": (int,),
}  # fmt: skip


def _key(x: Any) -> Any:
    """A hashable key equal for JSON-equal values: True is not 1, 1 is 1.0 (jsonschema's ``equal``)."""
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, dict):
        return ("object", frozenset((k, _key(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return ("array", tuple(_key(v) for v in x))
    return x


def _type_check(names: list[str]) -> Check:
    exact = frozenset(t for name in names for t in _EXACT[name])
    slow = tuple(_TYPES[name] for name in names)
    return lambda x: type(x) in exact or any(p(x) for p in slow)


def _every(checks: list[Check]) -> Check | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    frozen = tuple(checks)

    def every(x: Any) -> bool:
        for check in frozen:  # noqa: SIM110 - a plain loop spares a generator per call on the hot path
            if not check(x):
                return False
        return True

    return every


class _Node:
    """A compiled (sub)schema; ``check``/``errors`` are replaced once a recursive ``$ref`` target is built."""

    __slots__ = ("check", "errors")

    def __init__(self, check: Check, errors: Errors) -> None:
        self.check = check
        self.errors = errors


_ALWAYS = _Node(lambda x: True, lambda x, path: iter(()))


def _false_errors(x: Any, path: Path) -> Iterator[Violation]:
    error = Violation(path, None, f"False schema does not allow {x!r}")
    error.matches_type = False
    yield error


_NEVER = _Node(lambda x: False, _false_errors)

#: Which keywords only look at instances of one JSON kind (checked after one isinstance per node).
_GROUP = {
    "required": dict, "properties": dict, "patternProperties": dict, "additionalProperties": dict,
    "propertyNames": dict, "items": list, "prefixItems": list, "minItems": list, "maxItems": list,
    "uniqueItems": list, "minLength": str, "maxLength": str, "pattern": str, "minimum": float,
    "maximum": float, "exclusiveMinimum": float,
}  # fmt: skip


class _Compiler:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.refs: dict[str, _Node] = {}

    def node(self, schema: Any, pointer: str) -> _Node:
        if schema is True:
            return _ALWAYS
        if schema is False:
            return _NEVER
        if not isinstance(schema, dict):
            raise UnsupportedSchemaError(pointer, f"a schema must be an object or a boolean, not {schema!r}")
        unknown = sorted(set(schema) - KEYWORDS - ANNOTATIONS)
        if unknown:
            raise UnsupportedSchemaError(pointer, f"unsupported keyword(s) {', '.join(unknown)}")
        if ("then" in schema or "else" in schema) and "if" not in schema:
            raise UnsupportedSchemaError(pointer, "then/else without if")
        grouped: dict[type | None, list[Check]] = {}
        errors: list[Errors] = []
        for keyword, value in schema.items():
            if keyword in ANNOTATIONS or keyword in ("then", "else"):
                continue
            check, errs = getattr(self, "k_" + keyword.lstrip("$"))(value, schema, f"{pointer}/{keyword}")
            if check is not None:
                grouped.setdefault(_GROUP.get(keyword), []).append(check)
            errors.append(errs)
        types = schema.get("type")
        type_check = None if types is None else _type_check([types] if isinstance(types, str) else list(types))
        return _Node(_node_check(grouped), _node_errors(errors, type_check))

    # Each k_* returns (check or None when it cannot fail for the group's kind, errors generator).

    def k_type(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
            raise UnsupportedSchemaError(ptr, f"bad type {value!r}")
        check = _type_check(names)
        reprs = ", ".join(repr(n) for n in names)

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if not check(x):
                yield Violation(path, "type", f"{x!r} is not of type {reprs}")

        return check, errors

    def k_enum(self, value: list[Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        keys = frozenset(_key(v) for v in value)
        if all(isinstance(v, str) for v in value):
            check: Check = lambda x: isinstance(x, str) and x in keys  # noqa: E731
        else:
            check = lambda x: _key(x) in keys  # noqa: E731
        return check, _simple(check, "enum", lambda x: f"{x!r} is not one of {value!r}")

    def k_const(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        key = _key(value)
        check: Check = lambda x: _key(x) == key  # noqa: E731
        return check, _simple(check, "const", lambda x: f"{value!r} was expected")

    def k_required(self, value: list[str], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        needed = frozenset(value)

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if isinstance(x, dict):
                for name in value:
                    if name not in x:
                        yield Violation(path, "required", f"{name!r} is a required property")

        return (lambda x: x.keys() >= needed), errors

    def k_properties(self, value: dict[str, Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        nodes = {k: self.node(sub, f"{ptr}/{k}") for k, sub in value.items()}
        checks = {k: n.check for k, n in nodes.items()}
        additional = schema.get("additionalProperties", True)
        if additional is False and "patternProperties" not in schema:
            # The common closed object: one pass over the instance checks both keywords.
            get = checks.get

            def check(x: Any) -> bool:
                for k, v in x.items():
                    sub = get(k)
                    if sub is None or not sub(v):
                        return False
                return True

        else:
            items = tuple(checks.items())
            check = lambda x: all(k not in x or c(x[k]) for k, c in items)  # noqa: E731

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if isinstance(x, dict):
                for k, node in nodes.items():
                    if k in x:
                        yield from node.errors(x[k], (*path, k))

        return check, errors

    def k_patternProperties(self, value: dict[str, Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        compiled = tuple((re.compile(p).search, self.node(s, f"{ptr}/{p}")) for p, s in value.items())

        def check(x: Any) -> bool:
            return all(node.check(v) for search, node in compiled for k, v in x.items() if search(k))

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if isinstance(x, dict):
                for search, node in compiled:
                    for k, v in x.items():
                        if search(k):
                            yield from node.errors(v, (*path, k))

        return check, errors

    def k_additionalProperties(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check | None, Errors]:
        known = frozenset(schema.get("properties", {}))
        patterns = schema.get("patternProperties", {})
        joined = re.compile("|".join(patterns)).search if patterns else None
        node = self.node(value, ptr)

        def extras(x: dict[str, Any]) -> list[str]:
            return [k for k in x if k not in known and not (joined and joined(k))]

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if not isinstance(x, dict):
                return
            found = extras(x)
            if value is False and found:
                if patterns:
                    verb = "does" if len(found) == 1 else "do"
                    names = ", ".join(repr(k) for k in sorted(found))
                    regexes = ", ".join(repr(p) for p in sorted(patterns))
                    message = f"{names} {verb} not match any of the regexes: {regexes}"
                    yield Violation(path, "additionalProperties", message)
                else:
                    verb = "was" if len(found) == 1 else "were"
                    names = ", ".join(repr(k) for k in sorted(found, key=str))
                    message = f"Additional properties are not allowed ({names} {verb} unexpected)"
                    yield Violation(path, "additionalProperties", message)
            elif value is not False:
                for k in found:
                    yield from node.errors(x[k], (*path, k))

        if value is True or (value is False and "properties" in schema and not patterns):
            return None, errors  # nothing to check, or already checked by k_properties' single pass
        sub = node.check
        return (lambda x: all(sub(x[k]) for k in extras(x))), errors

    def k_propertyNames(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        node = self.node(value, ptr)

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if isinstance(x, dict):
                for k in x:
                    yield from node.errors(k, path)

        return (lambda x: all(node.check(k) for k in x)), errors

    def k_items(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        prefix = len(schema.get("prefixItems", []))
        node = self.node(value, ptr)
        sub = node.check
        if value is False:
            check: Check = lambda x: len(x) <= prefix  # noqa: E731
        elif prefix:
            check = lambda x: all(sub(v) for v in x[prefix:])  # noqa: E731
        else:
            check = lambda x: all(sub(v) for v in x)  # noqa: E731

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if not isinstance(x, list) or len(x) <= prefix:
                return
            if value is False:
                extra = len(x) - prefix
                rest = x[prefix:] if extra != 1 else x[prefix]
                word = "items" if prefix != 1 else "item"
                yield Violation(path, "items", f"Expected at most {prefix} {word} but found {extra} extra: {rest!r}")
            else:
                for index in range(prefix, len(x)):
                    yield from node.errors(x[index], (*path, index))

        return check, errors

    def k_prefixItems(self, value: list[Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        nodes = [self.node(s, f"{ptr}/{i}") for i, s in enumerate(value)]
        checks = tuple(n.check for n in nodes)

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            if isinstance(x, list):
                for index, (item, node) in enumerate(zip(x, nodes, strict=False)):
                    yield from node.errors(item, (*path, index))

        return (lambda x: all(c(v) for c, v in zip(checks, x, strict=False))), errors

    def k_minItems(self, value: int, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        word = "should be non-empty" if value == 1 else "is too short"
        check: Check = lambda x: len(x) >= value  # noqa: E731
        return check, _simple(check, "minItems", lambda x: f"{x!r} {word}", list)

    def k_maxItems(self, value: int, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        word = "is expected to be empty" if value == 0 else "is too long"
        check: Check = lambda x: len(x) <= value  # noqa: E731
        return check, _simple(check, "maxItems", lambda x: f"{x!r} {word}", list)

    def k_uniqueItems(self, value: bool, schema: dict[str, Any], ptr: str) -> tuple[Check | None, Errors]:
        check: Check = lambda x: not value or len({_key(v) for v in x}) == len(x)  # noqa: E731
        return check, _simple(check, "uniqueItems", lambda x: f"{x!r} has non-unique elements", list)

    def k_minLength(self, value: int, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        word = "should be non-empty" if value == 1 else "is too short"
        check: Check = lambda x: len(x) >= value  # noqa: E731
        return check, _simple(check, "minLength", lambda x: f"{x!r} {word}", str)

    def k_maxLength(self, value: int, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        word = "is expected to be empty" if value == 0 else "is too long"
        check: Check = lambda x: len(x) <= value  # noqa: E731
        return check, _simple(check, "maxLength", lambda x: f"{x!r} {word}", str)

    def k_pattern(self, value: str, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        search = re.compile(value).search  # jsonschema uses re.search: same dialect, unanchored
        check: Check = lambda x: search(x) is not None  # noqa: E731
        return check, _simple(check, "pattern", lambda x: f"{x!r} does not match {value!r}", str)

    def k_minimum(self, value: float, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        check: Check = lambda x: x >= value  # noqa: E731
        return check, _simple(check, "minimum", lambda x: f"{x!r} is less than the minimum of {value!r}", float)

    def k_maximum(self, value: float, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        check: Check = lambda x: x <= value  # noqa: E731
        return check, _simple(check, "maximum", lambda x: f"{x!r} is greater than the maximum of {value!r}", float)

    def k_exclusiveMinimum(self, value: float, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        check: Check = lambda x: x > value  # noqa: E731
        message = lambda x: f"{x!r} is less than or equal to the minimum of {value!r}"  # noqa: E731
        return check, _simple(check, "exclusiveMinimum", message, float)

    def k_ref(self, value: str, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        if not value.startswith("#"):
            raise UnsupportedSchemaError(ptr, f"only local $ref are supported, not {value!r}")
        node = self.refs.get(value)
        if node is None:
            # Placeholder first, so that a recursive reference finds it while the target compiles.
            node = self.refs[value] = _Node(_ALWAYS.check, _ALWAYS.errors)
            target = self.node(_resolve(self.root, value, ptr), value[1:])
            node.check, node.errors = target.check, target.errors
            return target.check, target.errors
        if node.check is _ALWAYS.check:  # still compiling: a recursive reference, resolved at call time
            # The lambdas look node.check up at call time, once the target is built.
            return (lambda x: node.check(x)), (lambda x, path: node.errors(x, path))  # noqa: PLW0108
        return node.check, node.errors

    def _subnodes(self, value: list[Any], ptr: str) -> list[_Node]:
        if not isinstance(value, list) or not value:
            raise UnsupportedSchemaError(ptr, "must be a non-empty list of schemas")
        return [self.node(s, f"{ptr}/{i}") for i, s in enumerate(value)]

    def k_anyOf(self, value: list[Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        nodes = self._subnodes(value, ptr)
        checks = tuple(n.check for n in nodes)

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            context: list[Violation] = []
            for node in nodes:
                found = list(node.errors(x, path))
                if not found:
                    return
                context.extend(found)
            yield Violation(path, "anyOf", f"{x!r} is not valid under any of the given schemas", context)

        return (lambda x: any(c(x) for c in checks)), errors

    def k_oneOf(self, value: list[Any], schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        nodes = self._subnodes(value, ptr)
        checks = tuple(n.check for n in nodes)

        def check(x: Any) -> bool:
            matched = 0
            for c in checks:
                if c(x):
                    matched += 1
                    if matched > 1:
                        return False
            return matched == 1

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            context: list[Violation] = []
            for index, node in enumerate(nodes):
                found = list(node.errors(x, path))
                if not found:
                    more = [value[i] for i in range(index + 1, len(nodes)) if checks[i](x)]
                    if more:
                        reprs = ", ".join(repr(s) for s in [*more, value[index]])
                        yield Violation(path, "oneOf", f"{x!r} is valid under each of {reprs}")
                    return
                context.extend(found)
            yield Violation(path, "oneOf", f"{x!r} is not valid under any of the given schemas", context)

        return check, errors

    def k_not(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        inner = self.node(value, ptr).check
        check: Check = lambda x: not inner(x)  # noqa: E731
        return check, _simple(check, "not", lambda x: f"{x!r} should not be valid under {value!r}")

    def k_if(self, value: Any, schema: dict[str, Any], ptr: str) -> tuple[Check, Errors]:
        condition = self.node(value, ptr).check
        then = self.node(schema.get("then", True), ptr[: -len("if")] + "then")
        otherwise = self.node(schema.get("else", True), ptr[: -len("if")] + "else")
        then_check, else_check = then.check, otherwise.check

        def errors(x: Any, path: Path) -> Iterator[Violation]:
            yield from (then if condition(x) else otherwise).errors(x, path)

        return (lambda x: then_check(x) if condition(x) else else_check(x)), errors


def _simple(check: Check, keyword: str, message: Callable[[Any], str], kind: type | None = None) -> Errors:
    """The errors generator of a keyword with a single possible error (``kind``: the instances it applies to)."""
    applies: Check = _TYPES["number"] if kind is float else (lambda x: kind is None or isinstance(x, kind))

    def errors(x: Any, path: Path) -> Iterator[Violation]:
        if applies(x) and not check(x):
            yield Violation(path, keyword, message(x))

    return errors


def _node_check(grouped: dict[type | None, list[Check]]) -> Check:
    on_dict, on_list, on_str = (_every(grouped.get(kind, [])) for kind in (dict, list, str))
    on_number, on_any = _every(grouped.get(float, [])), _every(grouped.get(None, []))
    by_type: dict[type, Check] = {}
    for kind, check in ((dict, on_dict), (list, on_list), (str, on_str), (int, on_number), (float, on_number)):
        if check is not None:
            by_type[kind] = check
    get = by_type.get

    def by_kind(x: Any) -> Check | None:
        # Exact JSON types hit the dict; subclasses (an IntEnum, an OrderedDict) fall back to isinstance.
        found = get(type(x))
        if found is not None or type(x) in (dict, list, str, int, float, bool, type(None)):
            return found
        for kind, check in ((dict, on_dict), (list, on_list), (str, on_str)):
            if isinstance(x, kind):
                return check
        return on_number if _is_number(x) else None

    if on_any is None:
        if not by_type:
            return _ALWAYS.check

        def check_kind(x: Any) -> bool:
            found = by_kind(x)
            return found is None or found(x)

        return check_kind

    if not by_type:
        return on_any

    def check_both(x: Any) -> bool:
        found = by_kind(x)
        return (found is None or found(x)) and on_any(x)

    return check_both


def _node_errors(errors: list[Errors], type_check: Check | None) -> Errors:
    def node_errors(x: Any, path: Path) -> Iterator[Violation]:
        for keyword_errors in errors:
            for error in keyword_errors(x, path):
                if error.matches_type is None:
                    error.matches_type = type_check is not None and type_check(x)
                yield error

    return node_errors


def _resolve(root: Any, ref: str, ptr: str) -> Any:
    """Follow a local JSON pointer (``#/$defs/name``) from the root schema."""
    target = root
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise UnsupportedSchemaError(ptr, f"$ref {ref!r} does not resolve")
        target = target[part]
    return target
