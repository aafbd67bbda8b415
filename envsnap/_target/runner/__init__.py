"""The stage runner: the code shared by the in-process runner and the runner in another interpreter.

This package is stdlib-only at import time and imports pyarrow (and pandas, when a stage needs it)
lazily, from whichever interpreter runs it. It never imports envsnap: for ``--python`` and replays it is
shipped with the rest of :mod:`envsnap._target` (the package ``_envsnap_target``, whose directory is
appended at the END of the target's ``sys.path``, so it never shadows the target's packages), and
:func:`.main.main` runs the job described by a JSON file, writing each intermediate as parquet and a
JSON report. Its modules import each other relatively, so they work under both names. It must run on
the oldest Python a target may have (3.8): no ``match``, no ``str.removeprefix``, no runtime-evaluated
``X | Y`` types.

Per stage it measures the wall time, the peak resident memory of the process while the stage ran, and
the top-level modules imported while it ran (importing a ``call`` target counts: that is where a stage's
``import pandas`` happens); see :mod:`.measure`.
"""
