"""pytest plugin: ``pytest --envsnap-on-fail DIR`` writes one snapshot per failing test; the
``envsnap_inputs`` fixture (:mod:`envsnap.testing`) yields a baseline's recorded inputs.

Registered through the ``pytest11`` entry point, so it is loaded wherever envsnap is installed; without
the option it does nothing and imports nothing of envsnap's capture machinery. A test that fails in
setup, call or teardown gets one snapshot (its first failing phase), labelled with the test's node id,
with the test's exception and traceback in ``job/command.json``. Expected failures (xfail) and skips
are not failures. The path is added to the test's report, and a summary line lists the directory.
With ``--envsnap-mlflow`` each snapshot is also logged to the active MLflow run (``MLFLOW_RUN_ID``;
docs/mlflow.md); a failure to log is a warning.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# The baseline-inputs fixture of envsnap.testing, registered by being a name of this plugin module.
from envsnap.testing import envsnap_inputs

__all__ = [
    "envsnap_inputs",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]

OPTION = "--envsnap-on-fail"
_WRITTEN = pytest.StashKey[list[str]]()
_DONE = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--envsnap-on-fail DIR``."""
    group = parser.getgroup("envsnap", "envsnap: snapshots of failing tests")
    group.addoption(
        OPTION,
        dest="envsnap_on_fail",
        metavar="DIR",
        default=None,
        help="write an envsnap snapshot of the runtime for every failing test into DIR",
    )
    group.addoption(
        "--envsnap-mlflow",
        dest="envsnap_mlflow",
        action="store_true",
        default=False,
        help="with --envsnap-on-fail: also log each snapshot to the active MLflow run (MLFLOW_RUN_ID)",
    )
    group.addoption(
        "--envsnap-baseline",
        dest="envsnap_baseline",
        metavar="PATH",
        default=None,
        help="the baseline snapshot whose recorded inputs the envsnap_inputs fixture yields",
    )
    parser.addini("envsnap_baseline", "the default baseline snapshot of the envsnap_inputs fixture", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Set up this session's bookkeeping."""
    config.addinivalue_line(
        "markers", "envsnap_baseline(path, kind='pandas'): the baseline snapshot of the envsnap_inputs fixture"
    )
    config.stash[_WRITTEN] = []
    config.stash[_DONE] = set()


@pytest.hookimpl(hookwrapper=True)  # the old-style wrapper: works on every pytest >= 7
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """After each phase's report: capture once per failing test, and attach the snapshot's path."""
    outcome = yield
    report = outcome.get_result()
    directory = item.config.getoption("envsnap_on_fail")
    if not directory or not report.failed or call.excinfo is None:
        return
    done = item.config.stash[_DONE]
    if item.nodeid in done:
        return
    done.add(item.nodeid)
    from envsnap.capture.failure import log_failure_to_mlflow, record_failure

    exc = call.excinfo.value
    path = record_failure(exc, directory, label=item.nodeid, tag=item.nodeid)
    if path is not None:
        item.config.stash[_WRITTEN].append(str(path))
        report.sections.append(("envsnap", f"snapshot of this failure: {path}"))
        uri = log_failure_to_mlflow(exc, path) if item.config.getoption("envsnap_mlflow") else None
        if uri:
            report.sections.append(("envsnap", f"logged to MLflow: {uri}"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many snapshots were written, and where."""
    written = config.stash.get(_WRITTEN, [])
    if written:
        directory = config.getoption("envsnap_on_fail")
        terminalreporter.write_line(f"envsnap: {len(written)} snapshot(s) of failing tests written to {directory}")
