"""pytest plugin: ``pytest --envsnap-hook-on-fail DIR`` hands every failing test to envsnap (one snapshot each).

Registered through the ``pytest11`` entry point of ``envsnap-hook``; without the option it does nothing. The
option is not envsnap's own ``--envsnap-on-fail``, so both plugins load side by side when both are installed
(a failure one of them captured is not captured again by the other). A test that fails in setup, call or
teardown gets one snapshot (its first failing phase), labelled with its node id; expected failures and skips
are not failures. The path is added to the test's report, and a summary line names the directory.
"""

from __future__ import annotations

from typing import Any, Generator, List, Set  # List, Set: subscripted at run time on Python 3.8

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_runtest_makereport", "pytest_terminal_summary"]

OPTION = "--envsnap-hook-on-fail"
_WRITTEN = pytest.StashKey[List[str]]()
_DONE = pytest.StashKey[Set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--envsnap-hook-on-fail DIR``."""
    group = parser.getgroup("envsnap-hook", "envsnap-hook: failing tests handed to an envsnap installed elsewhere")
    group.addoption(
        OPTION,
        dest="envsnap_hook_on_fail",
        metavar="DIR",
        default=None,
        help="for every failing test, run envsnap (ENVSNAP_BIN, else on PATH) to write a snapshot into DIR",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Set up this session's bookkeeping."""
    config.stash[_WRITTEN] = []
    config.stash[_DONE] = set()


@pytest.hookimpl(hookwrapper=True)  # the old-style wrapper: works on every pytest >= 7
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """After each phase's report: capture once per failing test, and attach the snapshot's path."""
    outcome = yield
    report = outcome.get_result()
    directory = item.config.getoption("envsnap_hook_on_fail")
    if not directory or not report.failed or call.excinfo is None:
        return
    done = item.config.stash[_DONE]
    if item.nodeid in done:
        return
    done.add(item.nodeid)
    from envsnap_hook import record_failure

    path = record_failure(call.excinfo.value, directory, label=item.nodeid, tag=item.nodeid)
    if path is not None:
        item.config.stash[_WRITTEN].append(path)
        report.sections.append(("envsnap", "snapshot of this failure: " + path))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many snapshots were written, and where."""
    written = config.stash.get(_WRITTEN, [])
    if written:
        directory = config.getoption("envsnap_hook_on_fail")
        terminalreporter.write_line(f"envsnap-hook: {len(written)} snapshot(s) of failing tests written to {directory}")
