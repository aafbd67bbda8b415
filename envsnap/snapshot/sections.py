"""Typed views of the members several layers read: ``env/python.json``, ``env/packages.json``,
``env/system.json``, ``env/threads.json`` and ``pipeline/pipeline.json``.

Each is a frozen dataclass whose field names are the member's keys, so that a key is spelled once, here.
``from_dict`` builds one from a parsed member, checking the type of every field and naming the path of a
bad one (``$.cgroup.memory.limit_bytes``) in a :class:`~envsnap.errors.SchemaError`; ``to_dict`` gives
the JSON form back, equal to the member it was read from. The shipped schemas (``schemas/``) stay the
contract checked on read (ranges, patterns, ``oneOf``); ``from_dict`` checks what the dataclasses hold,
so every schema-valid member converts.

``env/python.json`` has no schema (it is whatever the interpreter reported): every key may be absent and
reads as None (``to_dict`` writes it as null), and keys this envsnap does not know are kept in ``extra``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from envsnap.errors import SchemaError
from envsnap.snapshot.model import SECTIONS

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "Cgroup",
    "CgroupCpu",
    "CgroupMemory",
    "Cpu",
    "DirectUrl",
    "Distribution",
    "EffectiveThreads",
    "Kernel",
    "Locale",
    "Memory",
    "OsRelease",
    "PackagesSection",
    "PipelineRunner",
    "PipelineSection",
    "PipelineStage",
    "PythonSection",
    "SystemSection",
    "ThreadPool",
    "ThreadsSection",
    "Timezone",
]

# Field metadata. _OPTIONAL: the key may be absent from the member (it reads as None); its value is True,
# or the name of the field whose presence also writes this one as null. _EXTRA: the field that keeps the
# keys of an open object (python.json) that no field names.
_OPTIONAL = "envsnap.optional"
_EXTRA = "envsnap.extra"


def _optional(*, written_with: str | None = None) -> Any:
    """A key that older members lack; left out of ``to_dict`` while None (unless ``written_with`` is not)."""
    return field(default=None, metadata={_OPTIONAL: written_with or True})


class _Bad(Exception):
    """A field that does not fit its dataclass: what is wrong, and where (filled in while unwinding)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        #: Keys and indexes from the bad value up to the member's root (innermost first).
        self.parts: list[str | int] = []

    @property
    def path(self) -> str:
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(self.parts))


# Converters check and convert a parsed JSON value; paths are only built for an error, so that a valid
# 300-distribution packages member converts in a few hundred microseconds.
_Convert = Callable[[Any], Any]

_JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _scalar(kind: type) -> _Convert:
    name = _JSON_TYPES[kind]
    if kind is int:

        def check(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:

        def check(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
    else:

        def check(value: Any) -> bool:
            return isinstance(value, kind)

    def convert(value: Any) -> Any:
        if not check(value):
            raise _Bad(f"{value!r} is not of type '{name}'")
        return value

    return convert


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if tp in _JSON_TYPES:
        return _JSON_TYPES[tp]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "array"
    if origin is Literal:
        return "string"
    return "object"


def _union(options: tuple[Any, ...]) -> _Convert:
    nullable = type(None) in options
    converters = [_converter(option) for option in options if option is not type(None)]
    names = ", ".join(f"'{_type_name(o)}'" for o in options)

    def convert(value: Any) -> Any:
        if value is None and nullable:
            return None
        for each in converters:
            try:
                return each(value)
            except _Bad as exc:
                if exc.parts:
                    raise  # the value had the right type; something inside it is wrong
        raise _Bad(f"{value!r} is not of type {names}")

    return convert


def _literal(allowed: tuple[Any, ...]) -> _Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise _Bad(f"{value!r} is not one of {list(allowed)!r}")
        return value

    return convert


def _array(item: _Convert, *, of_strings: bool) -> _Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Bad(f"{value!r} is not of type 'array'")
        if of_strings and all(type(v) is str for v in value):
            return tuple(value)
        out = []
        for index, each in enumerate(value):
            try:
                out.append(item(each))
            except _Bad as exc:
                exc.parts.append(index)
                raise
        return tuple(out)

    return convert


def _mapping(item: _Convert) -> _Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Bad(f"{value!r} is not of type 'object'")
        out = {}
        for key, each in value.items():
            try:
                out[key] = item(each)
            except _Bad as exc:
                exc.parts.append(key)
                raise
        return out

    return convert


def _converter(tp: Any) -> _Convert:
    """The checking converter from JSON for a field's type (the few shapes the sections use)."""
    if tp is Any:
        return lambda value: value
    if tp in _JSON_TYPES:
        return _scalar(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _object(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin is Literal:
        return _literal(args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _array(_converter(args[0]), of_strings=args[0] is str)
    if origin is Mapping and args[0] is str:
        return _mapping(_converter(args[1]))
    raise TypeError(f"no JSON converter for {tp!r}")  # a new field type: teach _converter about it


#: One converter per dataclass, built on first use.
_OBJECTS: dict[type, _Convert] = {}


def _object(cls: type) -> _Convert:
    """The converter of a section dataclass (built once): required keys, field types, no unknown key."""
    convert = _OBJECTS.get(cls)
    if convert is None:
        convert = _OBJECTS[cls] = _build_object(cls)
    return convert


def _build_object(cls: type) -> _Convert:
    hints = typing.get_type_hints(cls)
    extra = next((f.name for f in dataclasses.fields(cls) if f.metadata.get(_EXTRA)), None)
    specs = [
        (f.name, _converter(hints[f.name]), extra is not None or _OPTIONAL in f.metadata)
        for f in dataclasses.fields(cls)
        if f.name != extra
    ]
    known = frozenset(name for name, _, _ in specs)

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Bad(f"{value!r} is not of type 'object'")
        kwargs: dict[str, Any] = {}
        for name, each, optional in specs:
            if name in value:
                try:
                    kwargs[name] = each(value[name])
                except _Bad as exc:
                    exc.parts.append(name)
                    raise
            elif not optional:
                raise _Bad(f"{name!r} is a required property")
        if len(value) != len(kwargs) or extra is not None:
            unknown = [k for k in value if k not in known]
            if extra is not None:
                kwargs[extra] = {k: value[k] for k in unknown}
            elif unknown:
                verb = "was" if len(unknown) == 1 else "were"
                raise _Bad(f"Additional properties are not allowed ({', '.join(map(repr, unknown))} {verb} unexpected)")
        return cls(**kwargs)

    return convert


def _encode(value: Any) -> Any:
    """The JSON form of a section value: dataclasses become objects, tuples arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get(_EXTRA):
                out.update(item)
                continue
            optional = f.metadata.get(_OPTIONAL)
            if item is None and optional is not None and (optional is True or getattr(value, optional) is None):
                continue
            out[f.name] = _encode(item)
        return out
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value


_S = TypeVar("_S", bound="_Section")


class _Section:
    """What every typed section shares: its member, ``from_dict``/``to_dict``, ``from_snapshot``."""

    member: ClassVar[str]

    @classmethod
    def from_dict(cls: type[_S], data: Any, *, source: str = "<snapshot>") -> _S:
        """Build from the parsed member; a :class:`SchemaError` names the member and the bad field."""
        try:
            section: _S = _object(cls)(data)
        except _Bad as exc:
            raise SchemaError(source, cls.member, exc.path, exc.problem) from None
        return section

    def to_dict(self) -> dict[str, Any]:
        """The member's JSON form."""
        out: dict[str, Any] = _encode(self)
        return out

    @classmethod
    def from_snapshot(cls: type[_S], snap: Snapshot) -> _S | None:
        """The section of ``snap`` (hash-checked, schema-validated), or None when the snapshot lacks it or
        its probe failed (the member holds only ``{"error": ...}``)."""
        if cls.member not in snap:
            return None
        data = snap.read_json(cls.member)
        if isinstance(data, dict) and set(data) == {"error"}:
            return None
        return cls.from_dict(data, source=snap.path)


# --- env/python.json ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonSection(_Section):
    """``env/python.json``: the interpreter's identity, build, prefixes, platform tags and PEP 508 markers."""

    member: ClassVar[str] = SECTIONS["python"]

    implementation: str | None = None
    version: str | None = None
    version_info: tuple[int | str, ...] | None = None
    executable: str | None = None
    prefix: str | None = None
    base_prefix: str | None = None
    is_venv: bool | None = None
    build: tuple[str, ...] | None = None
    compiler: str | None = None
    cache_tag: str | None = None
    platform: str | None = None
    soabi: str | None = None
    ext_suffix: str | None = None
    abiflags: str | None = None
    gil_disabled: bool | None = None
    byteorder: str | None = None
    maxsize: int | None = None
    markers: Mapping[str, str] | None = None
    captured_in_process: bool | None = None
    #: Keys no field above names (written by another envsnap), kept as read.
    extra: Mapping[str, Any] = field(default_factory=dict, metadata={_EXTRA: True})


# --- env/packages.json --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectUrl:
    """PEP 610 ``direct_url.json`` of a distribution, credentials stripped."""

    url: str | None
    editable: bool
    vcs: str | None
    commit_id: str | None
    requested_revision: str | None
    subdirectory: str | None
    source: Literal["vcs", "archive", "dir"] | None
    hashes: tuple[str, ...]
    #: Why ``direct_url.json`` could not be read (absent when it could).
    error: str | None = _optional()


@dataclass(frozen=True)
class Distribution:
    """One installed distribution (the first of its name on ``sys.path``)."""

    name: str
    normalized_name: str
    version: str
    summary: str | None
    installer: str | None
    location_kind: Literal["site", "editable", "local", "vcs", "url"]
    location: str
    direct_url: DirectUrl | None
    requires: tuple[str, ...]
    top_level: tuple[str, ...]
    hashes: tuple[str, ...]
    dependencies: tuple[str, ...]
    extras_requested: tuple[str, ...]


@dataclass(frozen=True)
class PackagesSection(_Section):
    """``env/packages.json``: every installed distribution of the captured runtime, by normalized name."""

    member: ClassVar[str] = SECTIONS["packages"]

    site_dirs: tuple[str, ...]
    distributions: tuple[Distribution, ...]


# --- env/system.json ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OsRelease:
    """``/etc/os-release`` fields and ``platform.system()``."""

    id: str | None
    id_like: str | None
    name: str | None
    version: str | None
    version_id: str | None
    version_codename: str | None
    pretty_name: str | None
    variant_id: str | None
    system: str


@dataclass(frozen=True)
class Kernel:
    """``uname``: release, version, machine."""

    release: str
    version: str
    machine: str


@dataclass(frozen=True)
class Cpu:
    """CPU model, feature flags and core counts."""

    model: str | None
    vendor: str | None
    family: str | None
    model_number: str | None
    stepping: str | None
    flags: tuple[str, ...]
    logical_cores: int | None
    physical_cores: int | None
    sockets: int | None


@dataclass(frozen=True)
class Memory:
    """Physical memory."""

    total_bytes: int | None


@dataclass(frozen=True)
class CgroupCpu:
    """The strictest CPU quota on the cgroup chain."""

    quota_us: int | None
    period_us: int | None
    effective_cpus: float | None
    source: Literal["v1", "v2"] | None


@dataclass(frozen=True)
class CgroupMemory:
    """The strictest memory limit on the cgroup chain."""

    limit_bytes: int | None
    source: Literal["v1", "v2"] | None


@dataclass(frozen=True)
class Cgroup:
    """cgroup version, CPU and memory limits, cpuset."""

    version: Literal["v1", "v2", "hybrid"] | None
    cpu: CgroupCpu
    memory: CgroupMemory
    cpuset_cpus: str | None
    cpuset_count: int | None


@dataclass(frozen=True)
class Locale:
    """Locale variables as set, and the effective ``LC_*`` categories."""

    variables: Mapping[str, str]
    effective: Mapping[str, str | None]


@dataclass(frozen=True)
class Timezone:
    """``TZ``, ``/etc/timezone``, the ``/etc/localtime`` link and the name they resolve to."""

    tz: str | None
    etc_timezone: str | None
    localtime: str | None
    name: str | None


@dataclass(frozen=True)
class SystemSection(_Section):
    """``env/system.json``: OS release, kernel, glibc, CPU, memory, cgroup limits, locale, timezone."""

    member: ClassVar[str] = SECTIONS["system"]

    os: OsRelease
    kernel: Kernel
    glibc: str | None
    cpu: Cpu
    memory: Memory
    cgroup: Cgroup
    locale: Locale
    timezone: Timezone


# --- env/threads.json ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPool:
    """One native thread pool (threadpoolctl) and its size."""

    internal_api: str | None
    user_api: str | None
    num_threads: int | None


@dataclass(frozen=True)
class EffectiveThreads:
    """The CPU budget the process had and the pool sizes it ran with (None: not read in process)."""

    cpu_count: int | None
    affinity: str | None
    affinity_count: int | None
    cgroup_cpus: float | None
    usable_cpus: int | None
    pools: tuple[ThreadPool, ...] | None


@dataclass(frozen=True)
class ThreadsSection(_Section):
    """``env/threads.json``: configured thread knobs against the effective CPU budget and pool sizes."""

    member: ClassVar[str] = SECTIONS["threads"]

    configured: Mapping[str, str]
    effective: EffectiveThreads
    mismatches: tuple[str, ...]


# --- pipeline/pipeline.json ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineRunner:
    """How the runner ran the stages."""

    mode: Literal["in-process", "subprocess", "not-run"]
    python: str | None
    added_by_runner: tuple[str, ...]
    preloaded_distributions: tuple[str, ...]


@dataclass(frozen=True)
class PipelineStage:
    """A stage's definition and how it ended; exactly one of ``call`` and ``run`` is set."""

    index: int
    name: str
    kind: Literal["call", "run"]
    inputs: tuple[str, ...] | None
    accepts: Literal["pandas", "arrow", "polars", "numpy"] | None
    status: Literal["ok", "failed", "not-run"]
    record: str | None
    call: str | None = _optional()
    run: str | None = _optional()
    #: Minor 4: fixed keyword arguments, and the names of a 2-D numpy output's columns (absent when unset).
    params: Mapping[str, Any] | None = _optional()
    columns: tuple[str, ...] | None = _optional()

    @property
    def target(self) -> str:
        """What the stage runs: ``module:function`` or the command line."""
        return self.call or self.run or ""


@dataclass(frozen=True)
class PipelineSection(_Section):
    """``pipeline/pipeline.json``: the stages in order, how each ended, and how the runner ran.

    ``root`` and ``pythonpath`` came with format minor 1; both are None in older snapshots.
    """

    member: ClassVar[str] = SECTIONS["pipeline"]

    name: str
    source: str
    accepts: Literal["pandas", "arrow", "polars", "numpy"]
    inputs: tuple[str, ...]
    stages: tuple[PipelineStage, ...]
    status: Literal["ok", "failed", "not-run"]
    failed_stage: str | None
    error: str | None
    runner: PipelineRunner
    root: str | None = _optional(written_with="pythonpath")
    pythonpath: tuple[str, ...] | None = _optional()
