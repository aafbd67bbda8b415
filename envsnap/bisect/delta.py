"""The delta bisect works on, and what applying a subset of it to GOOD means in replay terms.

Part of :mod:`envsnap.bisect` (which re-exports the public names): extraction of the package,
setting and Python changes from two snapshots, the coupling of packages that cannot be installed apart
(captured ``requires`` metadata), the replay arguments and GOOD copies that apply a subset, the one-line
repro command, and the comparison of the two recordings' outputs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from envsnap.errors import EnvsnapError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = [
    "BisectError",
    "Change",
    "Delta",
    "Unit",
    "extract_delta",
    "group_coupled",
    "recorded_differences",
    "replay_arguments",
    "repro_command",
    "without",
]


class BisectError(EnvsnapError, ValueError):
    """The bisection cannot start as asked (a bad option, a snapshot without a pipeline)."""


# -- the delta -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between GOOD and BAD: ``kind`` package | env | python; ``None`` = absent on that side."""

    kind: str
    name: str
    good: str | None
    bad: str | None
    note: str | None = None

    @property
    def action(self) -> str:
        """added | removed | changed."""
        return "added" if self.good is None else "removed" if self.bad is None else "changed"

    def describe(self) -> str:
        """``pytz 2025.2 → 2019.1``, ``OMP_NUM_THREADS: unset → 3``."""
        if self.kind == "env":
            before = "unset" if self.good is None else self.good
            return f"{self.name}: {before} → {'unset' if self.bad is None else self.bad}"
        return f"{self.name} {self.good or '(absent)'} → {self.bad or '(removed)'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "action": self.action}


Unit = tuple[Change, ...]


@dataclass(frozen=True)
class Delta:
    """What bisect can apply (``units``: coupled packages share one) and what it cannot."""

    units: tuple[Unit, ...]
    python: Change | None = None
    not_applicable: tuple[Change, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for unit in self.units for c in unit)

    @property
    def empty(self) -> bool:
        """Nothing that could change the output: redacted variables alone do not count (unknowable noise
        such as a CI job id; they are reported as notes)."""
        return not self.units and self.python is None and all(c.kind == "env" for c in self.not_applicable)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "units": [[c.to_dict() for c in unit] for unit in self.units],
            "python": self.python.to_dict() if self.python else None,
            "not_applicable": [c.to_dict() for c in self.not_applicable],
        }


def _distributions(snap: Snapshot) -> dict[str, dict[str, Any]]:
    from envsnap.core.naming import normalize_name

    data = snap.section("packages") if "env/packages.json" in snap else None
    if not isinstance(data, dict) or "error" in data:
        raise BisectError(f"{snap.path}: the snapshot records no package set", hint="re-capture it")
    return {normalize_name(str(d["normalized_name"])): d for d in data.get("distributions") or []}


def _installable(dist: Mapping[str, Any]) -> bool:
    kind = str(dist.get("location_kind") or "site")
    url = str((dist.get("direct_url") or {}).get("url") or "")
    return kind == "site" or (kind == "url" and url.endswith(".whl") and not url.startswith("file:"))


def _settings(snap: Snapshot) -> tuple[dict[str, str], dict[str, str | None]]:
    """Applied settings (as the replay plan applies them) and redacted variables with their digest."""
    from envsnap.replay.plan import HOST_PATH_VARIABLES

    values: dict[str, str] = {}
    redacted: dict[str, str | None] = {}
    threads = snap.section("threads") if "env/threads.json" in snap else None
    for key, value in ((threads or {}).get("configured") or {}).items() if isinstance(threads, dict) else ():
        if isinstance(value, str):
            values[key] = value
    variables = snap.section("envvars") if "env/envvars.json" in snap else None
    for key, entry in ((variables or {}).get("variables") or {}).items() if isinstance(variables, dict) else ():
        if key in HOST_PATH_VARIABLES or not isinstance(entry, dict):
            continue
        if "value" in entry and not entry.get("redacted"):
            values[key] = str(entry["value"])
        else:
            redacted[key] = entry.get("digest")
    return values, redacted


def _python(snap: Snapshot) -> str | None:
    data = snap.section("python") if "env/python.json" in snap else None
    if not isinstance(data, dict) or not data.get("version"):
        return None
    return f"{data.get('implementation') or 'cpython'} {data['version']}"


def _satisfies(requirement: str, version: str | None) -> bool:
    """Whether ``version`` meets ``requirement``'s specifier (absent never does; unparsable always does)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    if version is None:
        return False
    try:
        return Requirement(requirement).specifier.contains(Version(version), prereleases=True)
    except (InvalidRequirement, InvalidVersion):
        return True


def _required(dist: Mapping[str, Any]) -> dict[str, list[str]]:
    """Normalized name -> requirement strings, for the requirements the capture found in force."""
    from packaging.requirements import InvalidRequirement, Requirement

    from envsnap.core.naming import normalize_name

    in_force = set(dist.get("dependencies") or ())
    out: dict[str, list[str]] = {}
    for text in dist.get("requires") or ():
        try:
            name = normalize_name(Requirement(str(text)).name)
        except InvalidRequirement:
            continue
        if name in in_force:
            out.setdefault(name, []).append(str(text))
    return out


def group_coupled(
    changes: Sequence[Change], good: Mapping[str, Mapping[str, Any]], bad: Mapping[str, Mapping[str, Any]]
) -> tuple[Unit, ...]:
    """Package changes that cannot be installed apart, joined into units (connected components).

    A needs B when BAD's A requires B and GOOD's B does not satisfy it, or when GOOD's A requires B and
    BAD's B does not satisfy it (applying the new B alone would break the old A). Non-package changes and
    packages with no such tie are units of their own; order follows ``changes``.
    """
    parent = {c.name: c.name for c in changes}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    packages = {c.name: c for c in changes if c.kind == "package"}
    for name in packages:
        for side, other_side in ((bad, "good"), (good, "bad")):
            dist = side.get(name)
            if dist is None:
                continue
            for dep, texts in _required(dist).items():
                other = packages.get(dep)
                if other is None or dep == name:
                    continue
                version = other.good if other_side == "good" else other.bad
                if not all(_satisfies(t, version) for t in texts):
                    parent[find(name)] = find(dep)
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(find(change.name), []).append(change)
    return tuple(tuple(g) for g in groups.values())


def extract_delta(good: Snapshot, bad: Snapshot) -> Delta:
    """The environment delta from ``good`` to ``bad``, grouped into units bisect can apply."""
    good_dists, bad_dists = _distributions(good), _distributions(bad)
    applicable: list[Change] = []
    skipped: list[Change] = []
    for name in sorted(set(good_dists) | set(bad_dists)):
        g, b = good_dists.get(name), bad_dists.get(name)
        gv, bv = (str(g["version"]) if g else None), (str(b["version"]) if b else None)
        if gv == bv:
            continue
        change = Change("package", name, gv, bv)
        if b is not None and not _installable(b):
            kind = b.get("location_kind")
            skipped.append(Change("package", name, gv, bv, f"BAD has it as a {kind} install; no index serves it"))
        else:
            applicable.append(change)
    good_env, good_hidden = _settings(good)
    bad_env, bad_hidden = _settings(bad)
    for key in sorted(set(good_env) | set(bad_env)):
        if key in good_hidden or key in bad_hidden:
            continue
        if good_env.get(key) != bad_env.get(key):
            applicable.append(Change("env", key, good_env.get(key), bad_env.get(key)))
    for key in sorted(set(good_hidden) | set(bad_hidden)):
        in_good, in_bad = key in good_hidden or key in good_env, key in bad_hidden or key in bad_env
        digests = good_hidden.get(key), bad_hidden.get(key)
        if in_good != in_bad or (None not in digests and digests[0] != digests[1]):
            skipped.append(
                Change(
                    "env",
                    key,
                    "(redacted)" if in_good else None,
                    "(redacted)" if in_bad else None,
                    "its value was redacted at capture time (add it to --env-allow to bisect it)",
                )
            )
    python = None
    gp, bp = _python(good), _python(bad)
    if gp != bp:
        python = Change("python", "python", gp, bp, "Python cannot be swapped under GOOD's packages")
    return Delta(group_coupled(applicable, good_dists, bad_dists), python, tuple(skipped))


# -- applying a subset to GOOD ---------------------------------------------------------------------------


def without(snap: Snapshot, packages: Iterable[str] = (), settings: Iterable[str] = ()) -> Snapshot:
    """An in-memory copy of ``snap`` whose runtime lacks ``packages`` and ``settings`` (what BAD removed)."""
    from envsnap.core.naming import normalize_name
    from envsnap.snapshot import canonical
    from envsnap.snapshot.build import assemble_snapshot

    drop, unset = {normalize_name(p) for p in packages}, set(settings)
    members = {name: snap.read_bytes(name) for name in snap.members()}
    if drop:
        data = dict(snap.section("packages"))
        data["distributions"] = [
            d for d in data["distributions"] if normalize_name(str(d["normalized_name"])) not in drop
        ]
        members["env/packages.json"] = canonical.dumps(data)
    if unset and "env/threads.json" in snap:
        threads = dict(snap.section("threads"))
        threads["configured"] = {k: v for k, v in threads["configured"].items() if k not in unset}
        members["env/threads.json"] = canonical.dumps(threads)
    if unset and "env/envvars.json" in snap:
        variables = dict(snap.section("envvars"))
        variables["variables"] = {k: v for k, v in variables["variables"].items() if k not in unset}
        members["env/envvars.json"] = canonical.dumps(variables)
    return assemble_snapshot(members, fingerprint=snap.fingerprint, label=snap.label, probes=snap.manifest.probes)


def replay_arguments(changes: Iterable[Change]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(``--with`` pins, ``--set-env`` pairs, removed packages, unset variables) that apply ``changes``."""
    pins, pairs, removed, unset = [], [], [], []
    for change in changes:
        if change.kind == "package":
            (pins.append(f"{change.name}=={change.bad}") if change.bad is not None else removed.append(change.name))
        elif change.kind == "env":
            (pairs.append(f"{change.name}={change.bad}") if change.bad is not None else unset.append(change.name))
    return pins, pairs, removed, unset


def repro_command(
    good: str, changes: Iterable[Change], *, engine: str, stage: str | None, base_image: str | None
) -> str:
    """``envsnap replay GOOD --with ... --set-env ...``: the culprit applied alone."""
    pins, pairs, removed, unset = replay_arguments(changes)
    argv = ["envsnap", "replay", good]
    if engine != "docker":
        argv += ["--engine", engine]
    if base_image:
        argv += ["--base-image", base_image]
    if stage:
        argv += ["--stage", stage]
    for pin in pins:
        argv += ["--with", pin]
    for pair in pairs:
        argv += ["--set-env", pair]
    line = shlex.join(argv)
    if removed or unset:
        line += f"  # and without {', '.join(removed + unset)} (replay has no --without: bisect replayed a copy)"
    return line


def _recorded_outputs(snap: Snapshot) -> dict[str, tuple[str, str | None, dict[str, str]]]:
    """Stage name -> (status, the kind it returned or None, output label -> parquet member)."""
    from envsnap.pipeline.records import stage_outputs

    if snap.kind == "command":
        raise BisectError(
            f"{snap.path}: a command snapshot (envsnap run -- COMMAND) has no stage outputs to bisect on",
            hint="replay it with `envsnap replay --with NAME==VERSION` per suspect, or declare the job as "
            "a pipeline (docs/pipelines.md) and record both runs with `envsnap run`",
        )
    if snap.kind != "pipeline":
        raise BisectError(
            f"{snap.path}: the snapshot has no pipeline (captured with `envsnap capture`)",
            hint="record both jobs with `envsnap run` so that bisect has outputs to compare",
        )
    out = {}
    for entry in snap.read_json("pipeline/pipeline.json").get("stages") or []:
        record_member = str(entry.get("record") or "")
        record = snap.read_json(record_member) if record_member and record_member in snap else {}
        value = record["value"] if isinstance(record.get("value"), dict) else {}
        kind = str(value["kind"]) if value.get("kind") else None
        members = {label: m for label, m in stage_outputs(record) if m and m in snap} if record else {}
        out[str(entry["name"])] = (str(entry.get("status")), kind, members)
    return out


def recorded_differences(good: Snapshot, bad: Snapshot, stage: str | None, rtol: float, atol: float) -> list[str]:
    """Stages whose recorded outputs differ between ``good`` and ``bad``: status, the kind of value returned,
    or any output (each tuple element, a dict's or an estimator's one-row table, ...) within ``rtol``/``atol``."""
    from envsnap.diff.tables import diff_parquet

    ours, theirs = _recorded_outputs(good), _recorded_outputs(bad)
    if stage is not None and stage not in ours:
        raise BisectError(f"--stage {stage!r}: no such stage in GOOD", hint=f"the stages are: {', '.join(ours)}")
    names = [stage] if stage is not None else [*ours, *(n for n in theirs if n not in ours)]
    differing = []
    for name in names:
        a, b = ours.get(name), theirs.get(name)
        if a is None or b is None or a[0] != b[0] or set(a[2]) != set(b[2]):
            differing.append(name)
            continue
        if a[1] is not None and b[1] is not None and a[1] != b[1]:
            differing.append(name)
            continue
        for label, left_member in a[2].items():
            right_member = b[2][label]
            if good.manifest.members[left_member].sha256 == bad.manifest.members[right_member].sha256:
                continue
            with good.open_member(left_member) as left, bad.open_member(right_member) as right:
                if diff_parquet(left, right, name=label, rtol=rtol, atol=atol).diverged:
                    differing.append(name)
                    break
    return differing
