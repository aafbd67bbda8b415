"""Stage functions: each takes a table (pandas or Arrow) and returns one, or fails in a documented way."""

from __future__ import annotations

from typing import Any


def clean(frame: Any) -> Any:
    """pandas: drop rows with a missing ``a``; the index is reset so the intermediate has no index column."""
    return frame.dropna(subset=["a"]).reset_index(drop=True)


def add_total(table: Any) -> Any:
    """Arrow: append ``total = a + b``."""
    import pyarrow.compute as pc

    return table.append_column("total", pc.add(table["a"], table["b"]))


def double_in_place(frame: Any) -> Any:
    """pandas, mutating its input in place (the previous intermediate must not change)."""
    frame["a"] = frame["a"] * 2
    return frame


def join(events: Any, users: Any) -> Any:
    """Two keyword inputs (pandas): events joined with users on ``user``."""
    return events.merge(users, on="user", how="left")


def needs_missing(frame: Any) -> Any:
    """Needs a column the input does not have."""
    return frame[["a", "tenure"]]


def needs_missing_arrow(table: Any) -> Any:
    """Arrow flavour of a missing column."""
    return table.select(["a", "tenure"])


def dict_lookup(frame: Any) -> Any:
    """A KeyError that has nothing to do with columns."""
    settings: dict[str, int] = {}
    return frame.head(settings["threshold"])


def returns_number(frame: Any) -> Any:
    """Not a table."""
    return len(frame)


def raises(frame: Any) -> Any:
    """Fails with a message that holds a credential (it must be scrubbed in the snapshot)."""
    token = "ghp_" + "A1b2" * 9  # built at run time: the secret itself appears nowhere in the source
    raise RuntimeError(f"upstream refused: token={token}")


def uses_toy_dep(frame: Any) -> Any:
    """Imports a distribution at call time (the test installs ``envsnap_toy_dep``)."""
    import envsnap_toy_dep  # type: ignore[import-not-found]

    return frame.assign(dep=envsnap_toy_dep.VALUE)


def uses_six(table: Any) -> Any:
    """Imports ``six`` while it runs (the --python test installs it in the target venv)."""
    import six

    return table.append_column("six", [[six.__version__] * table.num_rows])


def runner_isolation(table: Any) -> Any:
    """Where the runner sits on sys.path, and whether envsnap is importable, as seen from inside a stage."""
    import importlib.util
    import os
    import sys

    rows = table.num_rows

    def holds_runner(entry: str) -> bool:
        return os.path.isdir(os.path.join(entry, "_envsnap_target"))

    last = holds_runner(sys.path[-1])
    elsewhere = any(holds_runner(p) for p in sys.path[:-1])
    table = table.append_column("runner_last", [[last and not elsewhere] * rows])
    return table.append_column("envsnap_importable", [[importlib.util.find_spec("envsnap") is not None] * rows])
