"""The fidelity probe: the replayed runtime as the capture probes would see it, read from inside the replay.

Run by :mod:`envsnap.replay.execute` in the replay (the same runtime, mounts and limits as the stages),
from the shipped package the stage runner was installed with. It writes one JSON document to the file
it is given (the engine mixes the program's stdout with everything else it prints): the interpreter
inspection, the raw host facts (:mod:`.host`), the values of the environment variables it is asked for
and the user id. envsnap parses them with the code of the capture probes and diffs them against the
snapshot (:mod:`envsnap.replay.fidelity`).

Shipped code (see :mod:`envsnap._target`): standard library only, Python 3.8 syntax.
"""

from __future__ import annotations

import json
import os

from . import host, interpreter


def main(argv: list[str]) -> int:
    """``argv``: the output file, then the names of the environment variables to report."""
    interpreter.forget_launch_paths()
    out, keys = argv[0], set(argv[1:])
    facts = {
        "inspect": interpreter.inspect(),
        "host": host.read_host_facts(),
        "environ": {k: v for k, v in os.environ.items() if k in keys},
        "uid": os.getuid(),
    }
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(facts, fh, default=str)
    return 0
