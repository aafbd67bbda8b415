"""``run`` stages: a command line (no shell) with ``{input}``/``{output}`` parquet files."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from .tables import to_arrow

if TYPE_CHECKING:
    from collections.abc import Mapping

OUTPUT_TAIL = 4000
_PLACEHOLDER = re.compile(r"\{(input|output|python)(?::([A-Za-z0-9][A-Za-z0-9_-]*))?\}")


def substitute(token: str, values: Mapping[str, str], named: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        what, name = match.group(1), match.group(2)
        if what == "input" and name is not None:
            if name not in named:
                raise LookupError(f"{{input:{name}}} is not one of the stage's inputs ({', '.join(sorted(named))})")
            return named[name]
        if what == "input" and "input" not in values:
            raise LookupError("{input} is ambiguous: the stage takes several inputs; use {input:NAME}")
        return values[what]

    return _PLACEHOLDER.sub(replace, token)


def run_command(
    stage: Mapping[str, Any],
    prefix: str,
    tables: Mapping[str, Any],
    workdir: str,
    cwd: str | None,
    pythonpath: list[str],
) -> tuple[Any, dict[str, Any]]:
    """Run a ``run`` stage: inputs written as parquet, the command run (no shell), its output read back.

    The pipeline's ``pythonpath`` goes in front of ``PYTHONPATH``, so that a ``python -m project.tool``
    command imports the same project code as the ``call`` stages.
    """
    import pyarrow.parquet as pq

    named = {}
    for name, table in tables.items():
        path = os.path.join(workdir, f"{prefix}.in.{name}.parquet")
        pq.write_table(to_arrow(table), path)
        named[name] = path
    output = os.path.join(workdir, f"{prefix}.out.parquet")
    values = {"output": output, "python": sys.executable}
    if len(named) == 1:
        values["input"] = next(iter(named.values()))
    argv = [substitute(token, values, named) for token in shlex.split(stage["run"])]
    if argv and argv[0] in ("python", "python3"):
        # "python" in a stage means the pipeline's interpreter (the --python target), not whatever PATH has.
        argv[0] = sys.executable
    out_log = os.path.join(workdir, f"{prefix}.stdout")
    err_log = os.path.join(workdir, f"{prefix}.stderr")
    with open(out_log, "wb") as out, open(err_log, "wb") as err:
        start = time.perf_counter()
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [env.get("PYTHONPATH")])])
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        max_rss: int | None = None
        if hasattr(os, "wait4"):
            # wait4 hands back this child's own rusage: its peak RSS, not the maximum over all children.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = _exit_code(status)
            max_rss = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
        else:  # pragma: no cover - Windows
            proc.wait()
        wall = time.perf_counter() - start
    facts: dict[str, Any] = {
        "wall_time_s": wall,
        "memory": {"method": "child-maxrss", "peak_rss_bytes": max_rss, "peak_rss_delta_bytes": None},
        "command": {
            "argv": [a.replace(workdir, "<tmp>") for a in argv],
            "returncode": proc.returncode,
            "stdout_tail": _tail(out_log),
            "stderr_tail": _tail(err_log),
        },
    }
    if proc.returncode != 0:
        last = (facts["command"]["stderr_tail"].strip().splitlines() or ["no output on stderr"])[-1]
        raise CommandFailed(f"command exited {proc.returncode}: {last[:300]}", facts)
    if not os.path.isfile(output):
        raise CommandFailed("command exited 0 but did not write its {output} parquet file", facts)
    try:
        result = pq.read_table(output)
    except Exception as exc:  # any reader error means the same: not a parquet table
        raise CommandFailed(f"its {{output}} is not a readable parquet file ({exc})", facts) from exc
    return result, facts


def _exit_code(status: int) -> int:
    """``os.waitstatus_to_exitcode`` (Python 3.9+), spelled out for older targets."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class CommandFailed(Exception):
    def __init__(self, message: str, facts: dict[str, Any]) -> None:
        super().__init__(message)
        self.facts = facts


def _tail(path: str) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - OUTPUT_TAIL))
        return fh.read().decode("utf-8", "replace")
