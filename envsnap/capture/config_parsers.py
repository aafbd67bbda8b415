"""Parsers of configuration files: YAML, JSON, TOML, INI, ``.env`` and Kubernetes ConfigMap manifests.

Each returns a JSON-able tree (what :mod:`envsnap.capture.configs` redacts and stores, and what the
key-level diff walks). Values that JSON cannot hold are made explicit strings: dates and times in ISO form,
YAML binary as ``<binary: N bytes>``, NaN and infinities as ``"nan"``/``"inf"``/``"-inf"``; mapping keys
that are not strings (YAML ``1:``, ``true:``) become their YAML spelling. A tree larger than
:data:`MAX_NODES` values (a YAML alias bomb expands exponentially) or deeper than :data:`MAX_DEPTH` is
refused. A file that cannot be parsed raises ``ValueError`` with a one-line reason.

YAML is read with PyYAML's safe loader only (libyaml's when built): no Python tags, no object
construction. A ConfigMap (``kind: ConfigMap``) stores its ``data`` keys as the config keys; a value whose
key names a YAML, JSON or TOML file (``app.yaml: |``) is parsed too, so a change inside it diffs by key.

:func:`redact_tree` redacts a parsed tree (by key name and by value) and :func:`join_key` /
:func:`join_index` spell the dotted paths that name its values (``model.features[2]``, ``a["b.c"]``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from envsnap.core.redact import is_secret_name, scrub_text

MAX_NODES = 200_000
MAX_DEPTH = 64
FORMATS = ("yaml", "json", "toml", "ini", "dotenv", "configmap")
_SUFFIXES = {
    ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml", ".ini": "ini", ".cfg": "ini",
    ".conf": "ini", ".env": "dotenv",
}  # fmt: skip
_DOTENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(.*)$")


def detect_format(path: str) -> str | None:
    """The config format from a file name: by suffix, and ``.env`` / ``.env.production`` / ``x.env``."""
    name = os.path.basename(path).lower()
    if name == ".env" or name.startswith(".env."):
        return "dotenv"
    return _SUFFIXES.get(os.path.splitext(name)[1])


def _yaml_loader() -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (safe loader); ValueError naming line and column when malformed."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency; guard for trimmed installs
        raise ValueError("PyYAML is not installed: YAML files cannot be parsed") from None
    try:
        return list(yaml.load_all(text, Loader=_yaml_loader()))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"not valid YAML{where}: {problem}") from None


def load_yaml(text: str) -> Any:
    """A single-document YAML text (the first document of a stream); ValueError when malformed."""
    documents = load_yaml_documents(text)
    return documents[0] if documents else None


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(_plain(key, _Budget(), 0))


def _plain(value: Any, budget: _Budget, depth: int) -> Any:
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise ValueError(f"more than {MAX_NODES} values (a YAML alias bomb?)")
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {_key_text(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, budget, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v, budget, depth + 1) for v in value), key=str)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return f"<binary: {len(value)} bytes>"
    return str(value)


def plain(value: Any) -> Any:
    """A JSON-able copy of a parsed document (module docstring); ValueError when too large or deep."""
    try:
        return _plain(value, _Budget(), 0)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def parse_toml(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """INI: ``{section: {key: value}}``, keys as written, no interpolation, ``[DEFAULT]`` a plain section."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none", strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep keys' case as written
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"not valid INI: {first}") from None
    return {section: dict(parser.items(section, raw=True)) for section in parser.sections()}


def _dotenv_value(raw: str, number: int) -> str:
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = 1
        while end < len(raw) and (raw[end] != quote or (quote == '"' and raw[end - 1] == "\\")):
            end += 1
        if end >= len(raw):
            raise ValueError(f"not a valid .env file: line {number}: unterminated quote")
        value = raw[1:end]
        return value.replace('\\"', '"').replace("\\n", "\n") if quote == '"' else value
    return re.sub(r"\s+#.*$", "", raw).strip()


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines (``export`` allowed, quotes, ``#`` comments); ValueError naming a bad line."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(stripped)
        if match is None:
            raise ValueError(f"not a valid .env file: line {number} is not KEY=value")
        out[match.group(1)] = _dotenv_value(match.group(2), number)
    return out


_EMBEDDED = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


def _embedded(key: str, value: Any) -> Any:
    """A ConfigMap value holding a whole file (``app.yaml: |``) parsed by its key's suffix, else as is."""
    fmt = _EMBEDDED.get(os.path.splitext(key.lower())[1])
    if fmt is None or not isinstance(value, str):
        return value
    try:
        parsed = load_yaml(value) if fmt == "yaml" else parse_json(value) if fmt == "json" else parse_toml(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, (dict, list)) else value


def _configmap_data(document: dict[str, Any]) -> dict[str, Any]:
    data = document.get("data") or {}
    binary = document.get("binaryData") or {}
    if not isinstance(data, dict) or not isinstance(binary, dict):
        raise ValueError("ConfigMap data/binaryData is not a mapping")
    out = {str(k): _embedded(str(k), v) for k, v in data.items()}
    out.update({str(k): f"<binary: {len(str(v))} base64 characters>" for k, v in binary.items()})
    return out


def _is_configmap(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "ConfigMap" and "apiVersion" in document


def parse_yaml_config(text: str) -> tuple[str, Any, list[str]]:
    """A YAML config or ConfigMap manifest: (format, tree, notes)."""
    documents = [d for d in load_yaml_documents(text) if d is not None]
    maps = [d for d in documents if _is_configmap(d)]
    if not maps:
        return "yaml", documents[0] if len(documents) == 1 else (documents or None), []
    notes = []
    if len(maps) < len(documents):
        notes.append(f"{len(documents) - len(maps)} document(s) that are not ConfigMaps left out")
    if len(maps) == 1:
        return "configmap", _configmap_data(maps[0]), notes
    named: dict[str, Any] = {}
    for index, document in enumerate(maps):
        metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
        name = str(metadata.get("name") or f"configmap-{index + 1}")
        namespace = metadata.get("namespace")
        named[f"{namespace}/{name}" if namespace else name] = _configmap_data(document)
    return "configmap", named, notes


def parse_config(fmt: str, text: str) -> tuple[str, Any, list[str]]:
    """Parse ``text`` as ``fmt`` (yaml, json, toml, ini, dotenv): (format, JSON-able tree, notes).

    The format comes back as ``configmap`` for a YAML ConfigMap manifest. ValueError when malformed.
    """
    notes: list[str] = []
    try:
        if fmt in ("yaml", "configmap"):
            fmt, tree, notes = parse_yaml_config(text)
        elif fmt == "json":
            tree = parse_json(text)
        elif fmt == "toml":
            tree = parse_toml(text)
        elif fmt == "ini":
            tree = parse_ini(text)
        elif fmt == "dotenv":
            tree = parse_dotenv(text)
        else:
            raise ValueError(f"unknown config format {fmt!r}")
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    return fmt, plain(tree), notes


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_COUNT_WORDS = frozenset({"max", "min", "num", "n", "total", "limit", "budget", "count", "per"})
REDACTED_KEY = "<redacted:key>"


# --- paths in a tree ------------------------------------------------------------------------------------


def join_key(path: str, key: str) -> str:
    """``a.b`` for a plain key; ``a["x.y"]`` for a key with dots, spaces or brackets."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def join_index(path: str, index: int) -> str:
    """``a.b[3]``."""
    return f"{path}[{index}]"


# --- redaction --------------------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a config key holds a secret: :func:`is_secret_name`, except names about tokenizers or token
    counts (``tokenizer``, ``max_tokens``), common in ML configs and not credentials."""
    if not is_secret_name(key):
        return False
    words = [w.lower() for w in _WORD.findall(key)]
    benign = [w for w in words if w.startswith("tokeniz")]
    if "tokens" in words and _COUNT_WORDS.intersection(words):
        benign.append("tokens")
    if not benign:
        return True
    rest = "_".join(w for w in words if w not in benign)
    return bool(rest) and is_secret_name(rest)


@dataclass
class Redaction:
    """What redaction did to one tree: the redacted paths with how (``key``/``value``) and the originals."""

    found: dict[str, tuple[str, Any]]

    @property
    def clean(self) -> bool:
        return not self.found


def redact_tree(tree: Any) -> tuple[Any, Redaction]:
    """A copy of ``tree`` with secrets replaced (module docstring), and what was replaced where."""
    found: dict[str, tuple[str, Any]] = {}

    def walk(value: Any, path: str, secret: bool) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, join_key(path, k), secret or is_secret_key(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, join_index(path, i), secret) for i, v in enumerate(value)]
        if secret and isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            found[path] = ("key", value)
            return REDACTED_KEY
        if isinstance(value, str):
            scrubbed = scrub_text(value)
            if scrubbed != value:
                found[path] = ("value", value)
            return scrubbed
        return value

    return walk(tree, "", False), Redaction(found)


def redaction_record(redaction: Redaction, environ: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """``{path: {"by", "digest"}}`` for a member, and the redaction key id (None when none was needed)."""
    if redaction.clean:
        return {}, None
    from envsnap.capture.envvars import load_key

    key = load_key(environ)
    out: dict[str, Any] = {}
    for path, (by, original) in sorted(redaction.found.items()):
        value = original if isinstance(original, str) else json.dumps(original)
        out[path] = {"by": by, "digest": key.digest(path, value)}
    return out, key.key_id


__all__ = [
    "FORMATS",
    "MAX_NODES",
    "REDACTED_KEY",
    "Redaction",
    "detect_format",
    "is_secret_key",
    "join_index",
    "join_key",
    "load_yaml",
    "load_yaml_documents",
    "parse_config",
    "parse_dotenv",
    "parse_ini",
    "parse_json",
    "parse_toml",
    "parse_yaml_config",
    "plain",
    "redact_tree",
    "redaction_record",
]
