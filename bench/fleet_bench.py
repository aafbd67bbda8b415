"""Fleet capture speed on a real local Ray cluster (N nodes on 127.0.0.1, as the tests start them).

Measured, each the median of --repeat runs, with warm workers (one untimed run first):

* ``empty``: N empty tasks, one pinned to each node, submitted together: the scheduling round trip;
* ``single``: one single-node capture, ``envsnap.capture.capture()`` of the driver (in-process);
* ``fleet``: ``capture_cluster`` of the N nodes (the driver's capture included);
* ``node_payload_sum``: the per-node payload times of that fleet added up: what capturing the nodes one
  after another would cost at least.

The claims checked: ``fleet <= single + empty`` (``within_budget``: the node captures overlap each other
and the driver's own capture) and ``fleet < single + node_payload_sum`` (``overlapped``: not serial).
On one machine every node shares the same CPUs (``cpus``), so N payloads and the driver's capture compete
for them; ``within_budget`` is the claim for nodes that are separate machines.

Usage: ``.venv/bin/python bench/fleet_bench.py [--nodes 2] [--repeat 5] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.fleet_env import LocalRayCluster


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a driver of a loopback cluster (fleet_env)
    cluster = LocalRayCluster()
    try:
        cluster.start_head()
        for _ in range(args.nodes - 1):
            cluster.add_node()
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from envsnap.capture import capture
        from envsnap.integrations.ray import capture_cluster

        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]

        @ray.remote(num_cpus=0)
        def empty() -> int:
            return 0

        def round_trip() -> float:
            start = time.perf_counter()
            ray.get(
                [
                    empty.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
                    for n in nodes
                ]
            )
            return time.perf_counter() - start

        def single() -> float:
            start = time.perf_counter()
            capture(None, git=False)
            return time.perf_counter() - start

        payload_sums: list[float] = []

        def fleet(i: int) -> float:
            start = time.perf_counter()
            snap = capture_cluster(cluster.address, None, git=False)  # in memory, as `single`
            elapsed = time.perf_counter() - start
            index = snap.read_json("fleet.json")
            payload_sums.append(sum(n["wall_s"] or 0.0 for n in index["nodes"]))
            return elapsed

        round_trip(), single(), fleet(-1)  # warm: workers started, probes imported
        payload_sums.clear()
        samples: dict[str, list[float]] = {"empty": [], "single": [], "fleet": []}
        for i in range(args.repeat):
            samples["empty"].append(round_trip())
            samples["single"].append(single())
            samples["fleet"].append(fleet(i))
        ray.shutdown()
    finally:
        cluster.shutdown()
    result: dict[str, Any] = {k: _median(v) for k, v in samples.items()}
    result["node_payload_sum"] = _median(payload_sums)
    result["nodes"] = len(nodes)
    result["budget"] = round(result["single"] + result["empty"], 4)
    result["within_budget"] = result["fleet"] <= result["budget"]
    # Serial node captures would cost at least single + the payloads one after another.
    result["serial_floor"] = round(result["single"] + result["node_payload_sum"], 4)
    result["overlapped"] = result["fleet"] < result["serial_floor"]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
