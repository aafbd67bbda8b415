"""Replay benchmark: envsnap's image build and replay, side by side with the usual way.

The peer is what users do today, the repo2docker / MLflow way: a plain Dockerfile ``FROM`` the same base
image that ``COPY``s the lock and ``RUN pip install --no-deps -r`` it, built with ``docker build
--no-cache``. Two flavours, both real:

* **pip from the index** — the build runs with ``--network host`` and the host's CA bundle copied in (the
  only way pip in a container can verify this machine's package proxy);
* **pip from local wheels** — the same wheels envsnap uses, ``COPY``'d in, ``pip install --no-index``.

envsnap, in the same run, on the same snapshot (the example pipeline's 17-package ML lock):

* **cold build** — an empty wheel cache (``ENVSNAP_CACHE_DIR`` is a new directory) and no image: the host
  downloads the wheels, the image is built with ``--network none`` and installed with uv. The goal is
  ``cold envsnap / peer from the index <= 0.3``;
* **build, warm wheel cache** — no image, the wheels already cached;
* **warm replay** — the image exists for the fingerprint: the time from the start of the replay to its
  first stage (goal <= 3 s), and whether anything was rebuilt (goal: nothing).

    python bench/replay_bench.py --snapshot out/demo.envsnap --base-image REF [--runs 2] [--out bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from _harness import machine  # noqa: E402

COLD_GOAL = 0.3
FIRST_STAGE_GOAL_S = 3.0


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def forget_images(plan: Any) -> None:
    """Remove the replay images for this plan and every dangling layer, so that a build is cold."""
    for installer in ("uv", "pip"):
        docker("rmi", "-f", plan.image_tag(installer), check=False)
    docker("image", "prune", "-f", check=False)


def peer_build(context: Path, base: str, lock: str, *, from_index: bool) -> float:
    """``docker build --no-cache`` of the plain Dockerfile; seconds."""
    ctx = Path(tempfile.mkdtemp(prefix="peer-", dir=context.parent))
    (ctx / "requirements.txt").write_text(lock)
    if from_index:
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", ctx / "ca.crt")
        run = (
            "COPY ca.crt /ca.crt\nRUN python3 -m venv /opt/venv && "
            "PIP_CERT=/ca.crt /opt/venv/bin/pip install --no-cache-dir --no-deps -r /requirements.txt\n"
        )
        network = "host"
    else:
        shutil.copytree(context / "wheels", ctx / "wheels")
        run = (
            "COPY wheels/ /wheels/\nRUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir "
            "--no-index --find-links /wheels --no-deps -r /requirements.txt\n"
        )
        network = "none"
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY requirements.txt /requirements.txt\n{run}")
    started = time.perf_counter()
    proc = docker("build", "--no-cache", "--network", network, "-q", "-t", "envsnap-bench-peer:latest", str(ctx))
    took = time.perf_counter() - started
    shutil.rmtree(ctx, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"peer build failed: {proc.stderr[-2000:]}")
    docker("rmi", "-f", "envsnap-bench-peer:latest", check=False)
    return took


def envsnap_replay(snapshot: str, base: str, cache: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if cache is not None:
        env["ENVSNAP_CACHE_DIR"] = str(cache)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "replay", snapshot, "--base-image", base, "--json", "--no-fidelity"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"envsnap replay failed: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return {
        "wall_s": took,
        "built": doc["prepared"]["built"],
        "build_s": doc["prepared"]["build_seconds"],
        "to_first_stage_s": doc["seconds_to_first_stage"],
        "installer": doc["prepared"]["installer"],
        "stages": [s["status"] for s in doc["stages"]],
    }


def venv_install(wheels: Path, requirements: str, work: Path, *, tool: str) -> float:
    """``pip install`` / ``uv pip install`` of the lock into a fresh venv, offline from the same wheels."""
    venv_dir = Path(tempfile.mkdtemp(prefix=f"{tool}-venv-", dir=work))
    reqs = venv_dir / "requirements.txt"
    reqs.write_text(requirements)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip" if tool == "uv" else "--clear", str(venv_dir / "v")], check=True
    )
    common = ["--no-index", "--find-links", str(wheels), "--no-deps", "-r", str(reqs)]
    if tool == "uv":
        uv = _host_uv(wheels, work)
        cmd = [
            uv,
            "pip",
            "install",
            "-q",
            "--offline",
            "--no-cache",
            "--compile-bytecode",
            "--python",
            str(venv_dir / "v" / "bin" / "python"),
            *common,
        ]
    else:
        cmd = [str(venv_dir / "v" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", *common]
    subprocess.run(cmd, check=True, capture_output=True)
    took = time.perf_counter() - started
    shutil.rmtree(venv_dir, ignore_errors=True)
    return took


def _host_uv(wheels: Path, work: Path) -> str:
    target = work / "uv-bin" / "uv"
    if not target.exists():
        import zipfile

        wheel = next(wheels.glob("uv-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            member = next(n for n in zf.namelist() if n.endswith("/scripts/uv"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(member))
        target.chmod(0o755)
    return str(target)


def envsnap_venv_engine(snapshot: str, root: Path) -> dict[str, Any]:
    env = {**os.environ, "ENVSNAP_CACHE_DIR": str(root)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "envsnap", "replay", snapshot, "--engine", "venv", "--json", "--no-fidelity"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"envsnap replay --engine venv failed: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return {"wall_s": took, "build_s": doc["prepared"]["build_seconds"], "built": doc["prepared"]["built"]}


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", default=str(REPO / "out" / "demo.envsnap"))
    parser.add_argument("--base-image", default=os.environ.get("ENVSNAP_BASE_IMAGE"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", default=str(BENCH))
    args = parser.parse_args()
    if not args.base_image:
        raise SystemExit("give --base-image (scripts/docker-setup.sh prints one)")
    from envsnap.replay import replay_plan as make_plan
    from envsnap.replay.dockerfile import write_context

    plan = make_plan(args.snapshot, base_image=args.base_image)
    work = Path(tempfile.mkdtemp(prefix="envsnap-replay-bench-"))
    try:
        context = work / "ctx"
        write_context(plan, context)  # the wheels the local-wheels peer copies in (warms the default cache)
        rows: dict[str, list[float]] = {
            "peer_index": [], "peer_wheels": [], "cold": [], "warm_cache": [], "pip_venv": [], "uv_venv": [],
            "venv_engine_cold": [], "warm_replay_wall": [],
        }  # fmt: skip
        ratios: dict[str, list[float]] = {
            "cold/peer_index": [],
            "warm_cache/peer_wheels": [],
            "venv_engine/pip_venv": [],
        }
        first_stage: list[float] = []
        rebuilt_on_second: list[bool] = []
        # Warm-up: one of each, unrecorded.
        envsnap_replay(args.snapshot, args.base_image, None)
        for _ in range(args.runs):
            # Each envsnap figure right after the peer it is compared with: A B, A B, ...
            rows["peer_index"].append(peer_build(context, args.base_image, plan.requirements, from_index=True))
            forget_images(plan)
            cold_cache = Path(tempfile.mkdtemp(prefix="cold-cache-", dir=work))
            rows["cold"].append(envsnap_replay(args.snapshot, args.base_image, cold_cache)["build_s"])
            ratios["cold/peer_index"].append(rows["cold"][-1] / rows["peer_index"][-1])
            rows["peer_wheels"].append(peer_build(context, args.base_image, plan.requirements, from_index=False))
            forget_images(plan)
            rows["warm_cache"].append(envsnap_replay(args.snapshot, args.base_image, None)["build_s"])
            ratios["warm_cache/peer_wheels"].append(rows["warm_cache"][-1] / rows["peer_wheels"][-1])
            warm = envsnap_replay(args.snapshot, args.base_image, None)
            rows["warm_replay_wall"].append(warm["wall_s"])
            first_stage.append(warm["to_first_stage_s"])
            rebuilt_on_second.append(bool(warm["built"]))
            rows["pip_venv"].append(venv_install(context / "wheels", plan.requirements, work, tool="pip"))
            rows["uv_venv"].append(venv_install(context / "wheels", plan.requirements, work, tool="uv"))
            venv_root = Path(tempfile.mkdtemp(prefix="venv-engine-", dir=work))
            rows["venv_engine_cold"].append(envsnap_venv_engine(args.snapshot, venv_root)["build_s"])
            ratios["venv_engine/pip_venv"].append(rows["venv_engine_cold"][-1] / rows["pip_venv"][-1])
        med = {k: statistics.median(v) for k, v in rows.items()}
        result = {
            "machine": machine(),
            "snapshot": args.snapshot,
            "packages": len(plan.packages),
            "base_image": args.base_image,
            "runs": args.runs,
            "seconds": rows,
            "median_s": med,
            "ratios": ratios,
            "cold_vs_peer_index": statistics.median(ratios["cold/peer_index"]),
            "warm_cache_vs_peer_wheels": statistics.median(ratios["warm_cache/peer_wheels"]),
            "to_first_stage_s": statistics.median(first_stage),
            "to_first_stage_all": first_stage,
            "rebuilt_on_second_replay": any(rebuilt_on_second),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    (out / "results-replay.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Replay benchmark",
        "",
        f"{result['machine']}; snapshot {Path(args.snapshot).name} ({result['packages']} locked packages); "
        f"{args.runs} rounds after a warm-up, each envsnap figure right after its peer; "
        f"base image {args.base_image.split('@')[0]}. Median (min-max); ratios are per pair.",
        "",
        "| build | seconds | envsnap ÷ peer (per pair) | goal |",
        "|---|---|---|---|",
        f"| peer: plain Dockerfile, pip from the index, `docker build --no-cache` | {_stats(rows['peer_index'])} | | |",
        f"| envsnap cold: empty wheel cache, no image (uv, `--network none`) | {_stats(rows['cold'])} | "
        f"{_stats(ratios['cold/peer_index'])} | ≤ {COLD_GOAL} |",
        f"| peer: plain Dockerfile, pip from local wheels, `--no-cache` | {_stats(rows['peer_wheels'])} | | |",
        f"| envsnap, wheel cache warm, no image | {_stats(rows['warm_cache'])} | "
        f"{_stats(ratios['warm_cache/peer_wheels'])} | |",
        f"| peer: `pip install --no-deps -r` into a fresh venv (local wheels) | {_stats(rows['pip_venv'])} | | |",
        f"| peer: `uv pip install --compile-bytecode` into a fresh venv (local wheels) | {_stats(rows['uv_venv'])} "
        "| | |",
        f"| envsnap `--engine venv`, no venv yet (wheel cache warm) | {_stats(rows['venv_engine_cold'])} | "
        f"{_stats(ratios['venv_engine/pip_venv'])} vs pip | |",
        f"| envsnap warm replay, whole command (image exists, 5 stages, fidelity off) | "
        f"{_stats(rows['warm_replay_wall'])} | | |",
        "",
        f"Warm replay: the first stage starts {_stats(first_stage)} s after the replay begins (goal ≤ "
        f"{FIRST_STAGE_GOAL_S:.0f} s); rebuilt on a second replay: "
        f"{'yes' if result['rebuilt_on_second_replay'] else 'no'} (goal: no).",
        "",
    ]
    (out / "RESULTS-replay.md").write_text("\n".join(lines))
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
