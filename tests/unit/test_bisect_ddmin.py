"""ddmin, the oracle memo and the delta's grouping, against pure oracles (no replays)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from envsnap.bisect import Change, extract_delta, group_coupled, replay_bound, repro_command
from envsnap.bisect.ddmin import BAD, GOOD, UNRESOLVED, MemoOracle, OutOfReplaysError, Trial, ddmin
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot


def _oracle(culprit: set[int], unresolved: set[int] = frozenset()) -> MemoOracle:  # type: ignore[assignment]
    def run(subset: tuple[Any, ...]) -> Trial:
        if set(subset) & unresolved:
            return Trial(UNRESOLVED, "cannot install")
        return Trial(BAD if culprit <= set(subset) else GOOD)

    return MemoOracle(run)


@pytest.mark.parametrize("n", [2, 3, 6, 7, 8, 9, 16, 33, 100])
def test_one_culprit_within_the_log_bound(n: int) -> None:
    for culprit in range(n):
        oracle = _oracle({culprit})
        assert oracle(()) == GOOD and oracle(tuple(range(n))) == BAD  # the driver's two baseline replays
        assert ddmin(tuple(range(n)), oracle) == (culprit,)
        assert oracle.runs <= 2 * math.ceil(math.log2(n)) + 2 == replay_bound(n)


def test_two_changes_harmful_only_together() -> None:
    for pair in itertools.combinations(range(10), 2):
        oracle = _oracle(set(pair))
        assert ddmin(tuple(range(10)), oracle) == pair


def test_unresolved_subsets_are_not_bad() -> None:
    # changes 0 and 1 cannot be installed unless together with everything: the culprit is still found
    oracle = _oracle({5}, unresolved={0})
    assert ddmin(tuple(range(8)), oracle) == (5,)
    assert any(t.outcome == UNRESOLVED for t in oracle.memo.values())


def test_memo_runs_each_subset_once_and_enforces_the_budget() -> None:
    calls: list[frozenset[int]] = []

    def run(subset: tuple[Any, ...]) -> Trial:
        calls.append(frozenset(subset))
        return Trial(GOOD)

    oracle = MemoOracle(run, max_runs=2)
    oracle((1, 2))
    oracle((2, 1))
    oracle((3,))
    assert calls == [frozenset({1, 2}), frozenset({3})]
    with pytest.raises(OutOfReplaysError):
        oracle((4,))


def _dist(name: str, version: str, requires: tuple[str, ...] = (), kind: str = "site") -> dict[str, Any]:
    deps = [r.split("<")[0].split(">")[0].split("=")[0].split(";")[0].strip().lower() for r in requires]
    return {
        "name": name,
        "normalized_name": name,
        "version": version,
        "summary": None,
        "installer": "pip",
        "location_kind": kind,
        "location": "/site",
        "direct_url": None,
        "requires": list(requires),
        "top_level": [name],
        "hashes": [],
        "dependencies": deps,
        "extras_requested": [],
    }


def test_new_a_needing_new_b_are_coupled() -> None:
    good = {"pytest": _dist("pytest", "7.4.4", ("pluggy<2.0,>=0.12",)), "pluggy": _dist("pluggy", "1.3.0")}
    bad = {"pytest": _dist("pytest", "8.3.3", ("pluggy<2,>=1.5",)), "pluggy": _dist("pluggy", "1.5.0")}
    changes = [
        Change("package", "pluggy", "1.3.0", "1.5.0"),
        Change("package", "pytest", "7.4.4", "8.3.3"),
        Change("package", "six", "1.16.0", "1.17.0"),
        Change("env", "OMP_NUM_THREADS", None, "3"),
    ]
    units = group_coupled(changes, good, bad)
    assert [[c.name for c in u] for u in units] == [["pluggy", "pytest"], ["six"], ["OMP_NUM_THREADS"]]


def test_old_a_refusing_new_b_is_coupled_and_compatible_pairs_are_not() -> None:
    # GOOD's requests refuses urllib3 2: the new urllib3 cannot go in without the new requests
    good = {"requests": _dist("requests", "2.25.1", ("urllib3<1.27,>=1.21.1",)), "urllib3": _dist("urllib3", "1.26.20")}
    bad = {"requests": _dist("requests", "2.32.3", ("urllib3<3,>=1.21.1",)), "urllib3": _dist("urllib3", "2.2.3")}
    changes = [Change("package", "requests", "2.25.1", "2.32.3"), Change("package", "urllib3", "1.26.20", "2.2.3")]
    assert len(group_coupled(changes, good, bad)) == 1
    # both sides accept the other's version: independent
    bad["urllib3"] = _dist("urllib3", "1.26.19")
    changes[1] = Change("package", "urllib3", "1.26.20", "1.26.19")
    assert len(group_coupled(changes, good, bad)) == 2


def _snapshot(dists: list[dict[str, Any]], env: dict[str, Any], python: str) -> Snapshot:
    policy = {"allow": [], "key_id": None, "key_source": "none", "comparable": False}
    members = {
        "env/packages.json": canonical.dumps({"site_dirs": ["/site"], "distributions": dists}),
        "env/envvars.json": canonical.dumps({"policy": policy, "variables": env}),
    }
    # the Python is carried in the label here (env/python.json has many required fields): see _python below
    return assemble_snapshot(members, fingerprint="sha256:" + "0" * 64, label=python)


def test_delta_covers_packages_settings_python_and_what_cannot_be_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("envsnap.bisect.delta._python", lambda snap: snap.label)
    good = _snapshot(
        [_dist("pytz", "2025.2"), _dist("zipp", "3.21.0"), _dist("mine", "0.1", kind="editable")],
        {"OMP_NUM_THREADS": {"value": "4"}, "TOKEN": {"redacted": True, "digest": "a" * 16}, "PATH": {"value": "/a"}},
        "cpython 3.11.7",
    )
    bad = _snapshot(
        [_dist("pytz", "2019.1"), _dist("toolz", "1.0.0"), _dist("mine", "0.2", kind="editable")],
        {"MKL_NUM_THREADS": {"value": "1"}, "TOKEN": {"redacted": True, "digest": "b" * 16}, "PATH": {"value": "/b"}},
        "cpython 3.12.1",
    )
    delta = extract_delta(good, bad)
    assert [c.describe() for c in delta.changes] == [
        "pytz 2025.2 → 2019.1",
        "toolz (absent) → 1.0.0",
        "zipp 3.21.0 → (removed)",
        "MKL_NUM_THREADS: unset → 1",
        "OMP_NUM_THREADS: 4 → unset",
    ]
    assert delta.python is not None and delta.python.describe() == "python cpython 3.11.7 → cpython 3.12.1"
    assert {c.name for c in delta.not_applicable} == {"mine", "TOKEN"}  # editable, redacted; PATH is a host path
    assert not delta.empty
    same = extract_delta(good, good)
    assert same.empty and not same.units


def test_repro_command_is_one_line() -> None:
    changes = [Change("package", "pytz", "2025.2", "2019.1"), Change("env", "OMP_NUM_THREADS", None, "3 4")]
    line = repro_command("runs/good.envsnap", changes, engine="venv", stage="localize", base_image=None)
    assert line == (
        "envsnap replay runs/good.envsnap --engine venv --stage localize --with pytz==2019.1 "
        "--set-env 'OMP_NUM_THREADS=3 4'"
    )
    removed = repro_command(
        "g", [Change("package", "zipp", "3.21.0", None)], engine="docker", stage=None, base_image=None
    )
    assert removed.startswith("envsnap replay g  # and without zipp") and "\n" not in removed
