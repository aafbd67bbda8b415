"""A small pipeline for the replay tests: arrow in, arrow out; one stage depends on pytz's tz database.

``localize`` turns UTC event times into São Paulo local hours with pytz. Brazil abolished daylight saving
time in 2019 (tz database 2019b): pytz 2019.1 still applies it from November to February, so that
stage, and only that stage, changes with the pytz version. ``summarize`` ignores the local hour.

The ``hostile`` stage misbehaves in the way named by ``$HOSTILE`` (only when set): it is how the tests
check that a replay is isolated.
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
    hours = []
    for ts in table["ts"].to_pylist():
        hours.append(zone.normalize(ts.replace(tzinfo=dt.timezone.utc).astimezone(zone)).hour)
    return table.append_column("local_hour", pa.array(hours, pa.int64()))


def summarize(table: pa.Table) -> pa.Table:
    return table.group_by("kind").aggregate([("amount", "sum"), ("amount", "count")]).sort_by("kind")


def hostile(table: pa.Table) -> pa.Table:
    how = os.environ.get("HOSTILE", "")
    if how == "network":
        import socket

        socket.create_connection(("93.184.216.34", 80), timeout=5)
    elif how == "write-usr":
        with open("/usr/envsnap-was-here", "w") as fh:
            fh.write("x")
    elif how == "memory":
        hog = bytearray(int(os.environ.get("HOSTILE_BYTES", str(2 << 30))))
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    elif how == "fork":
        children = []
        for _ in range(100000):
            pid = os.fork()
            if pid == 0:
                import time

                time.sleep(30)
                os._exit(0)
            children.append(pid)
    elif how == "raise":
        raise ValueError("hostile: raised on purpose")
    elif how == "other":
        raise TypeError("hostile: another failure")
    elif how == "sleep":
        import time

        time.sleep(float(os.environ.get("HOSTILE_SECONDS", "6")))
    elif how == "uid":
        return table.append_column("uid", pa.array([os.getuid()] * table.num_rows, pa.int64()))
    return table
