"""A snapshot turned into a :class:`ReplayPlan`: what to install, on which base, with which settings.

The plan is pure data, built from the snapshot's members alone (no engine, no network), so that
``envsnap replay --dry-run`` and ``envsnap export --dockerfile`` show exactly what a replay would do.

- **Base image**: ``--base-image``, else the captured image digest (the job ran in a container), else
  ``python:X.Y.Z-slim-bookworm`` for the captured Python (DESIGN.md, "Replay"), with the fallbacks the
  engine takes when that tag cannot be pulled (``base_candidates``, :func:`resolve_base`).
- **Platform**: on a host of another architecture (an arm64 laptop, an x86_64 capture), the captured
  architecture under emulation when the engine can, else wheels of the same versions for the host
  (:mod:`envsnap.replay.platforms`).
- **Packages**: every distribution of ``env/packages.json``, pinned, installed with ``--no-deps`` (the
  set is complete). Distributions an index cannot serve (editable installs, VCS checkouts, URLs,
  local wheels that no longer exist) are listed in ``excluded`` with the reason; a local wheel that still
  exists is carried into the wheelhouse. ``--with NAME==VERSION`` replaces (or adds) a pin.
- **Environment**: the captured thread settings and every allowlisted variable whose value was stored,
  minus host paths (``PATH``, ``VIRTUAL_ENV`` ...), which would point nowhere in the replay; ``--set-env``
  overrides.
- **Resources**: the captured cgroup CPU and memory limits (mirrored unless ``match_resources=False``).
- **Stages**: which of the recorded stages run (``stage``/``until``/``from_stage``) and, for ``from``,
  which recorded intermediates stand in for the stages before it.

The image tag is derived from what goes into the image (base reference, Python, the pins, the install
tool), so that a second replay of the same runtime reuses the image; ``--with`` changes the tag.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from envsnap.core.image_ref import pinned_reference
from envsnap.core.naming import normalize_name
from envsnap.errors import EnvsnapError
from envsnap.replay.platforms import (
    EngineSupport,
    PlatformChoice,
    base_image_candidates,
    captured_arch,
    choose_base,
    decide_platform,
    local_support,
)
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.sections import PackagesSection, PipelineSection, PythonSection, SystemSection, ThreadsSection

__all__ = [
    "HOST_PATH_VARIABLES",
    "RECIPE_VERSION",
    "Excluded",
    "Package",
    "PlanError",
    "PlannedStage",
    "ReplayPlan",
    "build_plan",
    "default_base_image",
    "resolve_base",
    "with_base",
]

#: The image recipe's own version: a change to how images are built gives new tags.
RECIPE_VERSION = 2
IMAGE_REPOSITORY = "envsnap-replay"
DEFAULT_DEBIAN = "bookworm"

#: Captured variables that describe the host's layout, not the job's behaviour: never applied.
HOST_PATH_VARIABLES = frozenset(
    {
        "PATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "LIBRARY_PATH",
        "CPATH",
        "PKG_CONFIG_PATH",
        "JAVA_HOME",
        "SPARK_HOME",
        "DYLD_LIBRARY_PATH",
        "DYLD_FALLBACK_LIBRARY_PATH",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_DATASETS_CACHE",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONPYCACHEPREFIX",
    }
)
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PlanError(EnvsnapError, ValueError):
    """The snapshot cannot be replayed as asked (no packages recorded, an unknown stage, a bad --with)."""


@dataclass(frozen=True)
class Package:
    """One distribution to install: ``source`` is ``index``, ``local-wheel`` (``path``: the file) or
    ``url-wheel`` (``path``: the URL it was installed from)."""

    name: str
    version: str
    source: str = "index"
    path: str | None = None
    overridden_from: str | None = None

    @property
    def normalized(self) -> str:
        return normalize_name(self.name)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Excluded:
    """A captured distribution the replay cannot install from an index, and why."""

    name: str
    version: str
    kind: str
    reason: str


@dataclass(frozen=True)
class PlannedStage:
    """A recorded stage and what the replay does with it: ``run``, ``recorded`` (stand-in) or ``skip``."""

    index: int
    name: str
    kind: str
    target: str
    action: str
    recorded_member: str | None
    recorded_status: str
    #: What the stage returned in the recording (``value.kind`` of its record: pandas, numpy, dict, tuple,
    #: none, ...; None for a failed stage or a record older than format minor 4).
    recorded_kind: str | None = None
    #: ``(label, member)`` of every recorded output: one, one per tuple element (``NAME.0``, ...), or none.
    recorded_outputs: tuple[tuple[str, str], ...] = ()
    #: The stage record (``pipeline/stages/NN-NAME.json``), when the stage ran in the recording.
    record: str | None = None


@dataclass(frozen=True)
class ReplayPlan:
    """Everything a replay does, derived from a snapshot and the user's overrides."""

    snapshot: str
    snapshot_id: str
    label: str | None
    fingerprint: str
    python_version: str
    python_implementation: str
    platform: str
    glibc: str | None
    base_image: str
    base_image_source: str
    packages: tuple[Package, ...]
    excluded: tuple[Excluded, ...]
    env: dict[str, str]
    env_not_applied: dict[str, str]
    cpus: float | None
    memory_bytes: int | None
    match_resources: bool
    stages: tuple[PlannedStage, ...]
    inputs: tuple[str, ...]
    pipeline_root: str | None
    pythonpath: tuple[str, ...]
    git: dict[str, Any] = field(default_factory=dict)
    with_packages: tuple[str, ...] = ()
    set_env: dict[str, str] = field(default_factory=dict)
    shell: bool = False
    #: The captured interpreter, when the base image is the captured one: the replay uses it (and what the
    #: image already has) where it exists in the image (``envsnap/replay/dockerfile.py``).
    image_python: str | None = None
    #: What the snapshot recorded to rerun: ``pipeline`` (stages), ``command`` (``envsnap run -- CMD``: one
    #: stage named "command") or ``environment`` (no job: ``--shell`` or ``replay SNAP -- COMMAND``).
    mode: str = "pipeline"
    #: The recorded ``job/command.json`` "command" record (``mode == "command"``).
    command: dict[str, Any] | None = None
    #: Top-level modules of installed distributions the recorded stages imported (their byte code is
    #: compiled ahead when a replay venv is built).
    imports: tuple[str, ...] = ()
    #: How the captured architecture runs on this host (native, emulated, rebuilt from the host's wheels).
    platform_choice: PlatformChoice | None = None
    #: The official images to try, best first, when the base is the official image (else empty).
    base_candidates: tuple[str, ...] = ()
    #: Why the base is not the first candidate (``fell back to X: Y cannot be pulled (why)``), else "".
    base_fallback: str = ""

    @property
    def requirements(self) -> str:
        """The pins, one per line (hashes are added by the wheelhouse, which knows the files)."""
        return "".join(f"{p.pin}\n" for p in self.packages)

    def image_key(self, installer: str) -> str:
        """What goes into the image, hashed: equal keys give the same image."""
        doc = {
            "recipe": RECIPE_VERSION,
            "base": self.base_image,
            "python": [self.python_implementation, self.python_version],
            "packages": sorted((p.normalized, p.version, p.source) for p in self.packages),
            "installer": installer,
        }
        if self.image_python:
            doc["image_python"] = self.image_python
        if self.platform_choice is not None and self.platform_choice.mode == "rebuilt":
            doc["platform"] = self.platform_choice.platform  # other wheels: another image
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def warm_modules(self) -> tuple[str, ...]:
        """The modules whose byte code a new replay venv compiles ahead: what the recorded stages imported."""
        return self.imports

    def image_tag(self, installer: str) -> str:
        return f"{IMAGE_REPOSITORY}:{self.image_key(installer)[:24]}"

    @property
    def run_stages(self) -> list[PlannedStage]:
        return [s for s in self.stages if s.action == "run"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_with(values: tuple[str, ...] | list[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for value in values:
        match = _PIN.match(value)
        if match is None:
            raise PlanError(f"--with {value!r} is not NAME==VERSION", hint="e.g. --with numpy==2.1.3")
        out[normalize_name(match.group(1))] = (match.group(1), match.group(2))
    return out


def _parse_set_env(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not _ENV_NAME.match(key):
            raise PlanError(f"--set-env {value!r} is not KEY=VALUE", hint="e.g. --set-env OMP_NUM_THREADS=1")
        out[key] = val
    return out


def _packages(
    snap: Snapshot, overrides: dict[str, tuple[str, str]]
) -> tuple[tuple[Package, ...], tuple[Excluded, ...]]:
    data = snap.section("packages") or {}
    failed = isinstance(data, dict) and "error" in data
    section = None if failed else PackagesSection.from_dict(data, source=snap.path)
    if section is None or not section.distributions:
        raise PlanError(
            f"{snap.path}: the snapshot records no installed packages (the packages probe "
            f"{'failed' if failed else 'found none'})",
            hint="re-capture it; a replay needs the package set",
        )
    packages: list[Package] = []
    excluded: list[Excluded] = []
    seen: set[str] = set()
    for dist in sorted(section.distributions, key=lambda d: d.normalized_name):
        name, version = dist.name, dist.version
        norm = normalize_name(name)
        if not name or norm in seen:
            continue
        seen.add(norm)
        if norm in overrides:
            _new_name, new_version = overrides[norm]
            packages.append(Package(name, new_version, overridden_from=version))
            continue
        kind = dist.location_kind
        direct = dist.direct_url
        url = (direct.url or "") if direct is not None else ""
        if kind == "site":
            packages.append(Package(name, version))
        elif kind == "url" and url.endswith(".whl") and not url.startswith("file:"):
            packages.append(Package(name, version, source="url-wheel", path=url))
        elif kind == "url" and not url.startswith("file:"):
            excluded.append(Excluded(name, version, kind, f"built from {url or 'a URL'}, not a wheel on an index"))
        elif kind == "local" and url.startswith("file://") and url.endswith(".whl"):
            packages.append(Package(name, version, source="local-wheel", path=url[len("file://") :]))
        elif kind == "editable":
            excluded.append(
                Excluded(name, version, kind, "an editable install: its code comes from the source tree, not an index")
            )
        elif kind == "vcs":
            commit = direct.commit_id if direct is not None else None
            excluded.append(
                Excluded(
                    name,
                    version,
                    kind,
                    f"a VCS checkout ({url}{'@' + str(commit) if commit else ''}); build a wheel and pass "
                    f"--with {name}=={version} with it in the wheelhouse",
                )
            )
        else:
            excluded.append(Excluded(name, version, kind, f"installed from {url or 'a local directory'}"))
    for norm, (name, version) in overrides.items():
        if norm not in seen:
            packages.append(Package(name, version, overridden_from="(not installed)"))
    return tuple(packages), tuple(excluded)


def _environment(snap: Snapshot, set_env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    env: dict[str, str] = {}
    skipped: dict[str, str] = {}
    threads = ThreadsSection.from_snapshot(snap)
    for key, value in sorted(threads.configured.items() if threads is not None else ()):
        env[key] = value
    variables = snap.section("envvars") if "env/envvars.json" in snap else None
    for key, entry in sorted(((variables or {}).get("variables") or {}).items()):
        if not isinstance(entry, dict) or entry.get("redacted") or "value" not in entry:
            continue
        if key in HOST_PATH_VARIABLES:
            skipped[key] = "a host path"
        else:
            env[key] = str(entry["value"])
    env.update(set_env)
    return env, skipped


def _resources(snap: Snapshot) -> tuple[float | None, int | None]:
    system = SystemSection.from_snapshot(snap)
    if system is None:
        return None, None
    cpus, limit = system.cgroup.cpu.effective_cpus, system.cgroup.memory.limit_bytes
    return (float(cpus) if cpus is not None and cpus > 0 else None), (
        limit if limit is not None and limit > 0 else None
    )


def _stages(
    snap: Snapshot, stage: str | None, until: str | None, from_stage: str | None
) -> tuple[tuple[PlannedStage, ...], PipelineSection]:
    pipeline = PipelineSection.from_snapshot(snap)
    if pipeline is None:
        raise PlanError(
            f"{snap.path}: the snapshot has no pipeline (it was captured with `envsnap capture`, not `envsnap run`)",
            hint="record the job with `envsnap run` so that replay has stages to rerun",
        )
    names = [s.name for s in pipeline.stages]
    for option, value in (("--stage", stage), ("--until", until), ("--from", from_stage)):
        if value is not None and value not in names:
            raise PlanError(f"{option} {value!r}: no such stage", hint=f"the stages are: {', '.join(names)}")
    first, last = 0, len(names) - 1
    if stage is not None:
        first = last = names.index(stage)
    if until is not None:
        last = names.index(until)
    if from_stage is not None:
        first = names.index(from_stage)
    if first > last:
        raise PlanError(f"--from {names[first]!r} comes after --until {names[last]!r}")
    planned = []
    for i, entry in enumerate(pipeline.stages):
        kind, outputs = _recorded_outputs(snap, entry.record) if entry.status == "ok" else (None, ())
        member = outputs[0][1] if len(outputs) == 1 else None
        if first <= i <= last:
            action = "run"
        elif i < first:
            action = "recorded"
        else:
            action = "skip"
        if action == "recorded" and not outputs and kind != "none":
            raise PlanError(
                f"--from {names[first]!r}: stage {entry.name!r} before it has no recorded intermediate "
                f"(it {entry.status})",
                hint="start from an earlier stage",
            )
        planned.append(
            PlannedStage(
                index=entry.index,
                name=entry.name,
                kind=entry.kind,
                target=entry.target,
                action=action,
                recorded_member=member,
                recorded_status=entry.status,
                recorded_kind=kind,
                recorded_outputs=outputs,
                record=entry.record if entry.record and entry.record in snap else None,
            )
        )
    if first > 0:
        option = f"--from {names[first]!r}" if from_stage is not None else f"--stage {names[first]!r}"
        _check_stand_ins(snap, planned, pipeline, option)
    return tuple(planned), pipeline


def _recorded_outputs(snap: Snapshot, record_member: str | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """(recorded value kind, ``(label, member)`` of each recorded output present in ``snap``) of one stage."""
    from envsnap.pipeline.records import stage_outputs

    if not record_member or record_member not in snap:
        return None, ()
    record = snap.read_json(record_member)
    value = record.get("value")
    kind = str(value["kind"]) if isinstance(value, dict) and value.get("kind") else None
    outputs = tuple((label, member) for label, member in stage_outputs(record) if member and member in snap)
    return kind, outputs


#: Recorded values a replay cannot hand to a later stage: their record describes them, it does not hold them.
_NOT_REBUILT = {"estimator": "a fitted estimator", "tuple": "a tuple"}


def _check_stand_ins(snap: Snapshot, planned: list[PlannedStage], pipeline: PipelineSection, option: str) -> None:
    """Refuse ``--from`` when a stage it runs would receive a recorded value that cannot be rebuilt."""
    by_name = {s.name: s for s in planned}
    definitions = {s.name: s for s in pipeline.stages}

    def flowing(name: str | None) -> str | None:
        # A stage that returned None passed on what it received: follow it to the value itself.
        seen: set[str] = set()
        while name in by_name and by_name[name].recorded_kind == "none" and name not in seen:
            seen.add(name)
            record = by_name[name].record
            value = snap.read_json(record).get("value") if record else None
            name = value.get("flows") if isinstance(value, dict) else None
        return name

    running = [s for s in planned if s.action == "run"]
    stand_ins = [s for s in planned if s.action == "recorded"]
    if not running or not stand_ins:
        return
    needed: list[str] = []
    if definitions[running[0].name].inputs is None:
        needed.append(stand_ins[-1].name)
    for stage in running:
        needed.extend(definitions[stage.name].inputs or ())
    for name in needed:
        source = flowing(name)
        stand_in = by_name.get(source) if source is not None else None
        if stand_in is None or stand_in.action != "recorded" or stand_in.recorded_kind not in _NOT_REBUILT:
            continue
        what = _NOT_REBUILT[stand_in.recorded_kind]
        raise PlanError(
            f"{option}: stage {stand_in.name!r} before it returned {what}, which cannot be rebuilt from "
            "its record to hand on",
            hint=f"replay --from {stand_in.name!r} or an earlier stage",
        )


def _recorded_imports(snap: Snapshot, stages: tuple[PlannedStage, ...]) -> tuple[str, ...]:
    """Top-level modules with a distribution that the stages to run imported in the recording."""
    found: set[str] = set()
    for stage in stages:
        if stage.action != "run" or not stage.record:
            continue
        for entry in snap.read_json(stage.record).get("imports") or ():
            if isinstance(entry, dict) and entry.get("distributions") and isinstance(entry.get("module"), str):
                found.add(entry["module"])
    return tuple(sorted(found))


def _pipeline_root(pipeline: PipelineSection) -> str | None:
    """Where the stages ran; snapshots of minor 0 did not record it: the config file's directory."""
    if pipeline.root:
        return pipeline.root
    if pipeline.source.startswith("/") and pipeline.source.endswith((".toml", ".cfg")):
        return pipeline.source.rsplit("/", 1)[0] or "/"
    return None


def default_base_image(python_version: str, debian: str = DEFAULT_DEBIAN) -> str:
    """The official image for the captured Python (``python:3.11.7-slim-bookworm``)."""
    return f"python:{python_version}-slim-{debian}"


def build_plan(
    snap: Snapshot,
    *,
    base_image: str | None = None,
    with_packages: tuple[str, ...] | list[str] = (),
    set_env: tuple[str, ...] | list[str] = (),
    stage: str | None = None,
    until: str | None = None,
    from_stage: str | None = None,
    match_resources: bool = True,
    shell: bool = False,
    support: EngineSupport | None = None,
) -> ReplayPlan:
    """The replay plan for ``snap`` (raises :class:`PlanError` on what cannot be replayed).

    ``support`` is what the engine runs (its architecture, what it emulates); None reads this host as the
    docker engine would see it (:func:`envsnap.replay.platforms.local_support`).
    """
    overrides = _parse_with(tuple(with_packages))
    extra_env = _parse_set_env(tuple(set_env))
    python = PythonSection.from_snapshot(snap)
    if python is None or not python.version:
        raise PlanError(f"{snap.path}: the snapshot does not record which Python ran the job", hint="re-capture it")
    packages, excluded = _packages(snap, overrides)
    env, skipped = _environment(snap, extra_env)
    cpus, memory = _resources(snap)
    job = snap.read_json("job/command.json") if "job/command.json" in snap else {}
    command = job.get("command") if isinstance(job, dict) and isinstance(job.get("command"), dict) else None
    if "pipeline/pipeline.json" not in snap:
        for option, value in (("--stage", stage), ("--until", until), ("--from", from_stage)):
            if value is not None:
                what = "a command (one stage, 'command')" if command else "no job, only its environment"
                raise PlanError(f"{option}: the snapshot has no pipeline stages (it records {what})")
    stages: tuple[PlannedStage, ...] = ()
    pipeline: PipelineSection | None = None
    if "pipeline/pipeline.json" in snap:
        stages, pipeline = _stages(snap, stage, until, from_stage)
    container = snap.section("container") if "env/container.json" in snap else None
    image = (container or {}).get("image") if isinstance(container, dict) else None
    digest_ref = pinned_reference(image) if isinstance(image, dict) else None
    if base_image:
        base, source = base_image, "--base-image"
    elif digest_ref:
        base, source = digest_ref, "the captured image digest"
    else:
        base, source = default_base_image(python.version), f"the official image for Python {python.version}"
    candidates = base_image_candidates(python.version, DEFAULT_DEBIAN) if source.startswith("the official") else ()
    pins = [(p.name, p.version) for p in packages]
    choice = decide_platform(
        captured_arch(python.platform or "linux-x86_64"), support or local_support("docker"), pins=pins
    )
    system = SystemSection.from_snapshot(snap)
    git = snap.section("git") if "env/git.json" in snap else None
    return ReplayPlan(
        snapshot=snap.path,
        snapshot_id=snap.id,
        label=snap.label,
        fingerprint=snap.fingerprint,
        python_version=python.version,
        python_implementation=python.implementation or "cpython",
        platform=python.platform or "linux-x86_64",
        glibc=system.glibc if system is not None else None,
        base_image=base,
        base_image_source=source,
        packages=packages,
        excluded=excluded,
        env=env,
        env_not_applied=skipped,
        cpus=cpus if match_resources else None,
        memory_bytes=memory if match_resources else None,
        match_resources=match_resources,
        stages=stages,
        inputs=pipeline.inputs if pipeline is not None else (),
        pipeline_root=_pipeline_root(pipeline) if pipeline is not None else (command or {}).get("root"),
        pythonpath=(pipeline.pythonpath or ()) if pipeline is not None else (),
        git=dict(git) if isinstance(git, dict) and "error" not in git else {},
        with_packages=tuple(f"{n}=={v}" for n, v in overrides.values()),
        set_env=extra_env,
        shell=shell,
        image_python=python.executable if source == "the captured image digest" and python.executable else None,
        mode="pipeline" if pipeline is not None else "command" if command else "environment",
        command=dict(command) if command and pipeline is None else None,
        imports=_recorded_imports(snap, stages),
        platform_choice=choice,
        base_candidates=candidates,
    )


def with_base(plan: ReplayPlan, base_image: str, source: str) -> ReplayPlan:
    """The same plan on another base image."""
    return replace(plan, base_image=base_image, base_image_source=source)


def resolve_base(plan: ReplayPlan, unavailable: Callable[[str], str | None]) -> ReplayPlan:
    """The plan on the first of its official base candidates that can be pulled (``unavailable`` says why a
    reference cannot be, or None), saying in ``base_fallback`` what it fell back to and why. A plan whose base
    is not the official image, or whose first candidate can be pulled, is returned unchanged; when none can
    be, the first stays (the engine's error then names it) and ``base_fallback`` says why each failed."""
    if not plan.base_candidates:
        return plan
    choice = choose_base(plan.base_candidates, unavailable)
    if not choice.fell_back:
        return plan
    if choice.image is None:
        return replace(plan, base_fallback=choice.note())
    return replace(plan, base_image=choice.image, base_fallback=choice.note())
