"""Replay: rebuild a snapshot's runtime (a container, or a local venv) and rerun its stages there.

    from envsnap.replay import replay
    report = replay("good.envsnap", engine="docker", base_image="127.0.0.1:5000/bookworm-python@sha256:…")
    report.first_diverging_stage      # None when every intermediate matches the recording
    report.fidelity                   # every way the replayed runtime differs from the captured one

:func:`plan` builds the :class:`~envsnap.replay.plan.ReplayPlan` alone (``--dry-run``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.replay.execute import ReplayError, ReplayReport, StageReplay
    from envsnap.replay.plan import PlanError, ReplayPlan
    from envsnap.snapshot.model import Snapshot

# Nothing heavy at import: the CLI's start must stay cheap. The report and plan types load on first use.
__all__ = ["PlanError", "ReplayError", "ReplayPlan", "ReplayReport", "StageReplay", "replay", "replay_plan"]


def __getattr__(name: str) -> Any:
    if name in ("ReplayError", "ReplayReport", "StageReplay"):
        from envsnap.replay import execute

        return getattr(execute, name)
    if name in ("PlanError", "ReplayPlan"):
        from envsnap.replay import plan as plan_module

        return getattr(plan_module, name)
    raise AttributeError(f"module 'envsnap.replay' has no attribute {name!r}")


def replay_plan(
    snapshot: Snapshot | str | os.PathLike[str],
    *,
    base_image: str | None = None,
    with_packages: Sequence[str] = (),
    set_env: Sequence[str] = (),
    stage: str | None = None,
    until: str | None = None,
    from_stage: str | None = None,
    match_resources: bool = True,
) -> ReplayPlan:
    """The replay plan for ``snapshot`` (nothing is built or run)."""
    from envsnap.replay.plan import build_plan
    from envsnap.snapshot.reader import opened

    with opened(snapshot) as snap:
        return build_plan(
            snap,
            base_image=base_image,
            with_packages=tuple(with_packages),
            set_env=tuple(set_env),
            stage=stage,
            until=until,
            from_stage=from_stage,
            match_resources=match_resources,
        )


def replay(
    snapshot: Snapshot | str | os.PathLike[str],
    *,
    engine: str = "docker",
    base_image: str | None = None,
    with_packages: Sequence[str] = (),
    set_env: Sequence[str] = (),
    stage: str | None = None,
    until: str | None = None,
    from_stage: str | None = None,
    match_resources: bool = True,
    source: str | None = None,
    repo: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    fidelity: bool = True,
    timeout: float | None = None,
    progress: Callable[[str, str], None] | None = None,
    keep: str | None = None,
) -> ReplayReport:
    """Rebuild ``snapshot``'s runtime with ``engine`` (``docker`` or ``venv``) and rerun its stages there.

    Each stage's new intermediate is compared with the recorded one (within ``rtol``/``atol``);
    ``with_packages`` (``NAME==VERSION``) and ``set_env`` (``KEY=VALUE``) are what-if overrides.
    Raises :class:`~envsnap.errors.EnvsnapError` subclasses for what is not the pipeline's doing
    (no engine, a missing base image, a package with no wheel for the target, a runner that died).
    """
    from envsnap.replay.engines import get_engine
    from envsnap.replay.execute import execute
    from envsnap.replay.plan import build_plan
    from envsnap.snapshot.reader import opened

    # build_plan, not plan(): once envsnap.replay.plan (the module) is imported, the name `plan` in this
    # package is that module.
    with opened(snapshot) as snap:
        the_plan = build_plan(
            snap,
            base_image=base_image,
            with_packages=tuple(with_packages),
            set_env=tuple(set_env),
            stage=stage,
            until=until,
            from_stage=from_stage,
            match_resources=match_resources,
        )
        return execute(
            snap,
            the_plan,
            get_engine(engine),
            source=source,
            repo=repo,
            rtol=rtol,
            atol=atol,
            fidelity=fidelity,
            timeout=timeout,
            progress=progress,
            keep=keep,
        )
