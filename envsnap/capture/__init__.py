"""Capture: run every registered probe and assemble a snapshot.

:func:`capture_snapshot` is the one orchestration; :func:`capture` (the public API), the pipeline
runner, ``on_failure`` and fleet captures all go through it, adding their own work as
:class:`CaptureSteps`.

``capture()`` never prints and never validates schemas (validation is the readers' and the tests' job:
cyclonedx's format validation alone costs seconds). Every string a probe returns is value-scanned for
credentials before it is serialised.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from envsnap.capture import target as target_mod
from envsnap.capture.base import (
    CaptureArguments,
    CaptureContext,
    CaptureOptions,
    Probe,
    ProbeOutput,
    paused_gc,
    registered,
)
from envsnap.core.redact import scrub_data, scrub_text
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.fingerprint import fingerprint
from envsnap.snapshot.manifest import ProbeStatus
from envsnap.snapshot.model import Snapshot

if TYPE_CHECKING:
    from typing import Unpack

__all__ = [
    "FINGERPRINT_SECTIONS",
    "PROBE_MODULES",
    "CaptureSteps",
    "build_snapshot",
    "capture",
    "capture_snapshot",
    "load_probes",
    "run_probes",
]

#: Probe modules in run order. The SBOM runs last: it is built from the other probes' results.
PROBE_MODULES = (
    "python",
    "packages",
    "lock",
    "system",
    "native",
    "os_packages",
    "gpu",
    "threads",
    "envvars",
    "container",
    "git",
    "job",
    "data",
    "job_files",
    "artifacts",
    "lockfiles",
    "configs",
    "source_files",
    "sbom",
)
FINGERPRINT_SECTIONS = ("python", "packages", "native", "threads", "system", "gpu", "container")


def load_probes() -> list[type[Probe]]:
    """Import the probe modules (which register themselves) and return the probe classes in order."""
    for name in PROBE_MODULES:
        importlib.import_module(f"envsnap.capture.{name}")
    # Registration follows import order, which any earlier `import envsnap.capture.configs` changes: run
    # in PROBE_MODULES order (later probes read earlier results: the git root, the packages).
    rank = {f"envsnap.capture.{name}": index for index, name in enumerate(PROBE_MODULES)}
    return sorted(registered(), key=lambda cls: rank.get(cls.__module__, len(rank)))


def _encode(member: str, data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return scrub_text(data).encode("utf-8")
    return canonical.dumps(scrub_data(data))


def run_probes(ctx: CaptureContext, probes: Iterable[type[Probe]]) -> tuple[dict[str, bytes], dict[str, ProbeStatus]]:
    """Run ``probes`` in order; return the encoded members and each probe's status."""
    members: dict[str, bytes] = {}
    statuses: dict[str, ProbeStatus] = {}
    for cls in probes:
        probe = cls()
        if not probe.enabled(ctx):
            statuses[probe.name] = ProbeStatus("skipped")
            continue
        try:
            result = probe.collect(ctx)
        except Exception as exc:  # noqa: BLE001 - a snapshot of a broken machine is exactly what is needed
            message = scrub_text(f"{type(exc).__name__}: {exc}")[:2000]
            partial = getattr(exc, "partial", None)
            if isinstance(partial, ProbeOutput):
                # The probe recorded what it could before failing (the inputs that did sample): keep it.
                ctx.results[probe.name] = partial.data
                members[probe.member] = _encode(probe.member, partial.data)
                for member, data in partial.extra.items():
                    members[member] = _encode(member, data)
                statuses[probe.name] = ProbeStatus("error", message, tuple(sorted([probe.member, *partial.extra])))
                continue
            statuses[probe.name] = ProbeStatus("error", message)
            if probe.member.endswith(".json"):
                members[probe.member] = canonical.dumps({"error": {"type": type(exc).__name__, "message": message}})
                ctx.results[probe.name] = {"error": {"type": type(exc).__name__, "message": message}}
            continue
        extra: dict[str, Any] = {}
        if isinstance(result, ProbeOutput):
            extra = result.extra
            result = result.data
        ctx.results[probe.name] = result
        members[probe.member] = _encode(probe.member, result)
        for member, data in extra.items():
            members[member] = _encode(member, data)
        statuses[probe.name] = ProbeStatus("ok", None, tuple(sorted([probe.member, *extra])))
    return members, statuses


def build_snapshot(
    ctx: CaptureContext,
    members: dict[str, bytes],
    statuses: dict[str, ProbeStatus],
) -> Snapshot:
    """Assemble the manifest (fingerprint, hashes, sizes) around already encoded members."""
    sections = {name: ctx.results.get(name) for name in FINGERPRINT_SECTIONS}
    return assemble_snapshot(
        members,
        fingerprint=fingerprint(sections),
        label=scrub_text(ctx.options.label) if ctx.options.label else None,
        probes=statuses,
        reproducible=ctx.options.reproducible,
    )


class CaptureSteps:
    """What a caller adds to :func:`capture_snapshot`, the one capture orchestration; by default nothing.

    The pipeline runner samples its inputs first, runs its stages between the data probe and the
    environment probes and adds the stage members; a fleet capture adds ``fleet.json`` and the members
    of its node groups.
    """

    #: Probes run before :meth:`between`, in registry order; the others run after it.
    first: tuple[str, ...] = ()

    def prepare(self, options: CaptureOptions) -> None:
        """Refuse what cannot work before any work is done (the destination is checked already)."""

    def check_target(self, options: CaptureOptions, target: target_mod.TargetRuntime) -> None:
        """Refuse the ``--python`` interpreter, once inspected, when this capture cannot use it."""

    def between(self, ctx: CaptureContext, statuses: Mapping[str, ProbeStatus]) -> None:
        """Work done after the probes named in :attr:`first` and before the others."""

    def extra_members(self, ctx: CaptureContext) -> tuple[dict[str, bytes], dict[str, ProbeStatus]]:
        """Encoded members written besides the probes', with their statuses; called after every probe ran."""
        return {}, {}


def capture_snapshot(
    options: CaptureOptions,
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    steps: CaptureSteps | None = None,
) -> Snapshot:
    """Capture what ``options`` ask for; write the snapshot to ``output`` atomically when given.

    The one orchestration behind :func:`capture`, :func:`envsnap.run_pipeline`, ``on_failure`` and
    fleet captures: check the destination, inspect the target (another interpreter answers while the
    probes are imported), build the context, run the probe registry (``steps`` may act between its
    parts), add ``steps``' members, build the manifest, write.
    """
    steps = steps if steps is not None else CaptureSteps()
    if output is not None:
        from envsnap.snapshot.writer import check_output

        check_output(output, force)  # fail before the work, not after it
    steps.prepare(options)
    factory: Callable[[], target_mod.TargetRuntime]
    if options.python is not None:
        # Start the target first; import the probes and their libraries while it answers.
        pending = target_mod.PendingInspection(options.python)
        with paused_gc():
            probes = load_probes()
            for cls in probes:
                cls.warm_up()
        inspected = pending.wait()  # a bad --python is the user's error: raise, write nothing
        steps.check_target(options, inspected)
        factory = lambda: inspected  # noqa: E731
    else:
        # Importing the probe modules allocates tens of thousands of objects: inside a job that has
        # imported numpy/pandas/scikit-learn that alone triggered a full collection of the job's heap
        # (~60 ms of a 190 ms first capture, bench/RESULTS-capture.md).
        with paused_gc():
            probes = load_probes()
        factory = target_mod.in_process
    ctx = CaptureContext(options, factory)
    with paused_gc():
        members, statuses = run_probes(ctx, [cls for cls in probes if cls.name in steps.first])
    # Outside paused_gc: the pipeline's stages are the user's code.
    steps.between(ctx, statuses)
    with paused_gc():
        later_members, later_statuses = run_probes(ctx, [cls for cls in probes if cls.name not in steps.first])
    members.update(later_members)
    statuses.update(later_statuses)
    extra_members, extra_statuses = steps.extra_members(ctx)
    members.update(extra_members)
    statuses.update(extra_statuses)
    with paused_gc():
        snap = build_snapshot(ctx, members, statuses)
    if output is not None:
        snap.path = str(snap.write(output, force=force))
    return snap


def capture(
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    failure: Mapping[str, Any] | None = None,
    **arguments: Unpack[CaptureArguments],
) -> Snapshot:
    """Capture the runtime contract of this interpreter (or of ``python``) as a :class:`Snapshot`.

    With ``output`` the snapshot is also written there atomically (``*.envsnap`` = zip, else a
    directory); ``force`` replaces an existing one. Raises :class:`~envsnap.errors.InterpreterError`
    when ``python`` is not a Python and :class:`~envsnap.errors.OutputError` when ``output`` cannot be
    written; a probe that fails is recorded in the snapshot instead.

    The other keyword arguments are :class:`~envsnap.capture.base.CaptureArguments`: ``python``,
    ``label``, ``env_allow``, ``git``, ``reproducible``, ``hashes``, ``cwd``, ``argv``, ``inputs``,
    ``sampling``, ``artifacts``, ``lockfiles``, ``config_files``. ``inputs`` maps names to sources (a
    parquet file or directory, a CSV, a pandas DataFrame or an Arrow table); each is sampled as
    ``sampling`` says and stored as ``data/inputs/NAME.parquet`` with its record. ``artifacts`` are files
    (models, configs) recorded by hash with format-specific metadata. ``failure`` is the exception being
    recorded (``{type, message, traceback}``, see ``on_failure``). ``lockfiles`` are lockfiles beyond
    those found at the repository root; ``config_files`` are configuration files or globs, stored parsed
    and redacted (docs/config.md).
    """
    options = CaptureOptions.build(**arguments)
    if failure is not None:
        options = dataclasses.replace(options, failure=failure)
    return capture_snapshot(options, output, force=force)
