"""A ``run`` stage: ``python -m envsnap_toy.cli IN OUT [--fail]`` adds ``label`` = "big" where a > 1."""

from __future__ import annotations

import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq


def main(argv: list[str]) -> int:
    """Read IN, add a label column, write OUT; ``--fail`` exits 4 with a message on stderr."""
    if "--fail" in argv:
        sys.stderr.write("label: refusing on purpose\n")
        return 4
    source, destination = argv[:2]
    table = pq.read_table(source)
    labels = pc.if_else(pc.greater(table["a"], 1), "big", "small")
    pq.write_table(table.append_column("label", labels), destination)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
