"""``envsnap.diff.diff(a, b)``: the whole comparison of two snapshots, and the live variants.

This module only assembles: the environment differ (:mod:`envsnap.diff.env`), the data differ
(:mod:`envsnap.diff.data`) and the suspect ranking (:mod:`envsnap.diff.suspects`) do the work. What it
adds are the *notes* — what the reader of a report must know to trust it: the two snapshots were written
by different format minors, one side has no data, redacted values cannot be compared, a probe failed on
one side, an intermediate exists on one side only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envsnap.diff.model import DataDiff, EnvDiff, SnapshotDiff, SnapshotRef
from envsnap.snapshot.reader import opened as _opened

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

__all__ = ["diff", "diff_current", "diff_requirements_file", "snapshot_ref"]


def snapshot_ref(snap: Snapshot) -> SnapshotRef:
    """Identity of one side of a diff, from its manifest."""
    manifest = snap.manifest
    return SnapshotRef(
        path=str(snap.path),
        id=manifest.id,
        label=manifest.label,
        created_at=manifest.created_at,
        fingerprint=manifest.fingerprint,
        format_minor=manifest.minor,
    )


def _has_data(snap: Snapshot) -> bool:
    return any(m.startswith(("data/", "pipeline/")) for m in snap.members())


def _envvar_policy(snap: Snapshot) -> dict[str, Any] | None:
    if "env/envvars.json" not in snap:
        return None
    try:
        data = snap.read_json("env/envvars.json")
    except Exception:  # noqa: BLE001 - the env differ reports an unreadable member itself
        return None
    policy = data.get("policy") if isinstance(data, dict) else None
    return policy if isinstance(policy, dict) else None


def _notes(a: Snapshot, b: Snapshot, env: EnvDiff, data: DataDiff) -> list[str]:
    notes: list[str] = []
    ma, mb = a.manifest, b.manifest
    if ma.minor != mb.minor:
        newer = "a" if ma.minor > mb.minor else "b"
        notes.append(
            f"different format minors: a is {ma.format}.{ma.minor}, b is {mb.format}.{mb.minor}; "
            f"fields only {newer}'s newer minor writes are not compared"
        )
    has_a, has_b = _has_data(a), _has_data(b)
    if has_a != has_b and not data.note:
        side = "b" if has_a else "a"
        notes.append(f"{side} has no data (no inputs, no pipeline): data not compared, only the environment")
    pa, pb = _envvar_policy(a), _envvar_policy(b)
    if pa is not None and pb is not None:
        if not (pa.get("comparable") and pb.get("comparable")):
            notes.append(
                "redacted environment values cannot be compared: a snapshot was captured without a "
                "redaction key (set ENVSNAP_REDACTION_KEY or share the key file); only names are compared"
            )
        elif pa.get("key_id") != pb.get("key_id"):
            notes.append(
                f"different redaction keys (a {pa.get('key_id')}, b {pb.get('key_id')}): redacted environment "
                "values cannot be compared, only names"
            )
    for name in sorted(set(ma.probes) | set(mb.probes)):
        for side, manifest in (("a", ma), ("b", mb)):
            status = manifest.probes.get(name)
            if status is not None and status.status == "error":
                notes.append(f"probe {name} failed in {side} ({status.error}): its section is not compared")
    for section in env.sections:
        if section.note:
            notes.append(f"{section.name}: {section.note}")
    if data.note:
        notes.append(f"data: {data.note}")
    for table in data.inputs:
        if table.status == "incomparable":
            notes.append(f"input {table.name} cannot be compared: {table.note or 'no reason given'}")
    for stage in data.stages:
        if stage.table.status == "incomparable":
            notes.append(f"stage {stage.name} cannot be compared: {stage.table.note or 'no reason given'}")
    return list(dict.fromkeys(notes))


def diff(
    a: Snapshot | str | os.PathLike[str],
    b: Snapshot | str | os.PathLike[str],
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    keys: Sequence[str] = (),
    max_rows: int = 10,
    config_map: Mapping[str, str] | None = None,
) -> SnapshotDiff:
    """Compare snapshot ``a`` (the good/old run) with ``b`` (the bad/new run): environment, data, suspects.

    ``a``/``b`` are opened snapshots or paths (directory or ``*.envsnap``). ``rtol``/``atol`` are the
    cell tolerances of the data diff, ``keys`` the columns that match rows (default: by position) and
    ``max_rows`` how many differing rows each table shows. ``config_map`` pairs ``a``'s config files with
    ``b``'s whose names differ (``{"config.yaml": "config-prod.yaml"}``, as ``--config-map``).
    """
    # The differs are imported here: `import envsnap` must stay cheap, and pyarrow loads only for data.
    from envsnap.diff.code_map import code_diff
    from envsnap.diff.data import diff_data
    from envsnap.diff.env import diff_env
    from envsnap.diff.suspects import rank_suspects

    with _opened(a) as snap_a, _opened(b) as snap_b:
        env = diff_env(snap_a, snap_b)
        if config_map:
            env = _with_configs(env, snap_a, snap_b, config_map)
        data = diff_data(snap_a, snap_b, rtol=rtol, atol=atol, keys=keys, max_rows=max_rows)
        code = code_diff(snap_a, snap_b, data.first_diverging_stage)
        return SnapshotDiff(
            a=snapshot_ref(snap_a),
            b=snapshot_ref(snap_b),
            env=env,
            data=data,
            suspects=rank_suspects(env, data, snap_a, snap_b, code=code),
            notes=tuple(_notes(snap_a, snap_b, env, data) + [f"code: {n}" for n in (code.notes if code else ())]),
            code=code,
            options={
                "rtol": rtol,
                "atol": atol,
                "keys": list(keys),
                "max_rows": max_rows,
                **({"config_map": dict(config_map)} if config_map else {}),
            },
        )


def _with_configs(env: EnvDiff, a: Snapshot, b: Snapshot, config_map: Mapping[str, str]) -> EnvDiff:
    """``env`` with its configs section compared again under ``config_map``."""
    import dataclasses

    from envsnap.diff.env_configs import diff_project_section

    configs = diff_project_section(a, b, "configs", config_map=config_map)
    sections = tuple(configs if s.name == "configs" else s for s in env.sections)
    return dataclasses.replace(env, sections=sections)


def diff_current(a: Snapshot | str | os.PathLike[str], *, python: str | None = None) -> SnapshotDiff:
    """Compare snapshot ``a`` with the environment as it is now (this interpreter, or ``python``).

    Only the environment is compared: the current side has no data. Git is not captured for it.
    """
    from envsnap.diff.live import current_snapshot

    current = current_snapshot(python)
    result = diff(a, current)
    notes = [n for n in result.notes if "has no data" not in n]
    notes.insert(0, f"b is the current environment ({python or 'this interpreter'}); only the environment is compared")
    return _replace(result, notes=tuple(notes))


def diff_requirements_file(a: Snapshot | str | os.PathLike[str], path: str | os.PathLike[str]) -> SnapshotDiff:
    """Compare the packages of snapshot ``a`` with a lock or requirements file (pinned ``name==version``)."""
    from envsnap.diff.live import diff_requirements
    from envsnap.diff.suspects import rank_suspects
    from envsnap.errors import NotFoundError

    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise NotFoundError(f"{source}: no such requirements file") from None
    with _opened(a) as snap_a:
        env = diff_requirements(snap_a, text, source=source)
        data = DataDiff(note="not compared: the other side is a requirements file")
        ref_b = SnapshotRef(
            path=source,
            id="requirements",
            label=os.path.basename(source),
            created_at=None,
            fingerprint="",
            format_minor=snap_a.manifest.minor,
        )
        return SnapshotDiff(
            a=snapshot_ref(snap_a),
            b=ref_b,
            env=env,
            data=data,
            suspects=rank_suspects(env, data, snap_a, snap_a),
            notes=(f"b is the requirements file {source}; only packages are compared",),
            options={},
        )


def _replace(result: SnapshotDiff, **changes: Any) -> SnapshotDiff:
    import dataclasses

    return dataclasses.replace(result, **changes)
