"""A pipeline for the bisect tests: each stage depends on one kind of environment change.

- ``localize`` depends on pytz's tz database (pytz 2019.1 still has Brazil on daylight saving time);
- ``plugins`` records pluggy's version (pytest 8.3 needs pluggy >= 1.5, so those two move together);
- ``tune`` depends on thread settings: OMP_NUM_THREADS=3 *and* MKL_NUM_THREADS=3 double the amounts
  (harmful only together), KMP_BLOCKTIME=0 triples them (harmful alone).
"""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.compute as pc


def clean(table: pa.Table) -> pa.Table:
    return table.filter(pc.greater_equal(table["amount"], 0))


def localize(table: pa.Table) -> pa.Table:
    import pytz

    zone = pytz.timezone("America/Sao_Paulo")
    hours = [zone.normalize(ts.replace(tzinfo=dt.timezone.utc).astimezone(zone)).hour for ts in table["ts"].to_pylist()]
    return table.append_column("local_hour", pa.array(hours, pa.int64()))


def plugins(table: pa.Table) -> pa.Table:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pluggy")
    except PackageNotFoundError:
        found = "absent"
    return table.append_column("pluggy", pa.array([found] * table.num_rows, pa.string()))


def tune(table: pa.Table) -> pa.Table:
    factor = 1.0
    if os.environ.get("OMP_NUM_THREADS") == "3" and os.environ.get("MKL_NUM_THREADS") == "3":
        factor *= 2.0
    if os.environ.get("KMP_BLOCKTIME") == "0":
        factor *= 3.0
    return table.set_column(2, "amount", pc.multiply(table["amount"], factor))
