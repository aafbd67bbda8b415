"""Capture benchmark (the environment alone): envsnap against its peers.

For each measured venv (``ml``: ~26 distributions, ``big``: 300+), ``envsnap capture --python VENV`` is run
pair by pair (A B A B ...) against every peer on the same venv, after a warm-up pair. In-process
``envsnap.capture.capture()`` is timed in fresh interpreters. The run writes bench/RESULTS-capture.md and
bench/results-capture.json (`make bench` runs it among the other areas: bench/run_all.py).

    python bench/capture_bench.py [--runs 7] [--venvs ml,big] [--no-setup]

See bench/README.md for what is measured and why the comparison is fair.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import setup_venvs
from _harness import Command, CommandFailed, Pair, machine, one_line, run_once, run_pair, summary, tool_output
from capture_report import write_reports

BENCH = setup_venvs.BENCH
REPO = setup_venvs.REPO
TOOLS_BIN = setup_venvs.SPECS["tools"].path / "bin"
MEASURED = ("ml", "big")
#: Modules a real ML job has imported when it calls envsnap.capture.capture() (ml-envsnap in-process figure).
ML_PRELOAD = "numpy,pandas,scipy,sklearn,pyarrow,matplotlib,requests"
FLOOR_SNIPPET = (
    "import importlib.metadata as m\n"
    "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"
)
SNAPSHOT_CHECK = """
import json, sys, envsnap
snap = envsnap.load(sys.argv[1])
packages = snap.section("packages") or {}
print(json.dumps({
    "members": len(snap.manifest.members),
    "distributions": len(packages.get("distributions", [])) if isinstance(packages, dict) else None,
    "probes": {n: s.status for n, s in snap.manifest.probes.items()},
    "probe_errors": {n: s.error for n, s in snap.manifest.probes.items() if s.status == "error"},
}))
"""


def short(path: str | Path) -> str:
    """A path as RESULTS.md shows it: relative to the repository where possible."""
    text = str(path)
    root = str(REPO) + os.sep
    return text[len(root) :] if text.startswith(root) else text


def envsnap_python(arg: str | None) -> Path:
    """The interpreter envsnap runs from: --envsnap-python, $ENVSNAP_PYTHON, or the repo's .venv."""
    chosen = arg or os.environ.get("ENVSNAP_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    # Absolute, not resolved: commands run in a scratch directory, and a venv's python must stay the link.
    return Path(chosen).absolute()


def envsnap_command(py: Path, venv_python: Path, out: Path) -> tuple[Command, str]:
    """The envsnap capture command: the console script when the CLI exists, else the API as a stand-in."""

    def remove_previous() -> None:
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()

    script = py.parent / "envsnap"
    has_cli = (
        script.exists()
        and subprocess.run([str(script), "capture", "--help"], capture_output=True, check=False).returncode == 0
    )
    argv: tuple[str, ...]
    if has_cli:
        argv = (str(script), "capture", "--python", str(venv_python), "-o", str(out))
        shown = f"{short(script)} capture --python {short(venv_python)} -o OUT.envsnap"
        mode = "cli"
    else:
        code = f"import envsnap.capture as c; c.capture({str(out)!r}, python={str(venv_python)!r})"
        argv = (str(py), "-c", code)
        shown = f'{short(py)} -c "import envsnap.capture as c; c.capture(OUT, python={short(venv_python)!r})"'
        mode = "api-stand-in"
    return Command("envsnap", "envsnap capture", argv, shown, before=remove_previous), mode


def peer_commands(venv_python: Path) -> list[Command]:
    """The peers, each run against the same venv (its own pip for pip; the tools venv for the others)."""
    vp, sp = str(venv_python), short(venv_python)
    cdx, pdt, uv = (str(TOOLS_BIN / n) for n in ("cyclonedx-py", "pipdeptree", "uv"))
    tb = short(TOOLS_BIN)
    return [
        Command("pip-freeze", "pip freeze", (vp, "-m", "pip", "freeze"), f"{sp} -m pip freeze"),
        Command(
            "pip-list-json",
            "pip list --format=json",
            (vp, "-m", "pip", "list", "--format=json"),
            f"{sp} -m pip list --format=json",
        ),
        Command(
            "cyclonedx", "cyclonedx-py environment", (cdx, "environment", vp), f"{tb}/cyclonedx-py environment {sp}"
        ),
        Command(
            "cyclonedx-no-validate",
            "cyclonedx-py environment --no-validate",
            (cdx, "environment", "--no-validate", vp),
            f"{tb}/cyclonedx-py environment --no-validate {sp}",
        ),
        Command(
            "pipdeptree-json",
            "pipdeptree -o json",
            (pdt, "--python", vp, "-o", "json"),
            f"{tb}/pipdeptree --python {sp} -o json",
        ),
        Command(
            "uv-pip-freeze", "uv pip freeze", (uv, "pip", "freeze", "--python", vp), f"{tb}/uv pip freeze --python {sp}"
        ),
        Command(
            "importlib-floor",
            "bare importlib.metadata scan (floor)",
            (vp, "-c", FLOOR_SNIPPET),
            f"{sp} -c 'import importlib.metadata as m; print(names==versions of m.distributions())'",
        ),
    ]


def make_workdir() -> Path:
    """A tiny git repository as the working directory of every run: the git probe does real, stable work."""
    work = Path(tempfile.mkdtemp(prefix="envsnap-bench-"))
    (work / "train.py").write_text("print('job')\n", encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "bench"]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    return work


def bench_env() -> dict[str, str]:
    """The host environment, minus what would make runs differ from a plain shell's."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # envsnap would otherwise default to an activated venv
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # pip list would otherwise query the index for its own version
    # This sandbox sets PYTHONDONTWRITEBYTECODE; a user's shell does not. Without bytecode caches every run
    # would recompile envsnap (editable) and the peers' uncached modules, which measures the sandbox.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def check_snapshot(py: Path, snap: Path) -> dict[str, Any]:
    """Open a snapshot with envsnap's verifying reader: the figures count only if it is a real capture."""
    proc = subprocess.run([str(py), "-c", SNAPSHOT_CHECK, str(snap)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-800:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    result["size_bytes"] = snap.stat().st_size if snap.is_file() else None
    return result


def distribution_count(venv_python: Path) -> int:
    """How many distributions ``pip list`` shows in a venv."""
    out = subprocess.run(
        [str(venv_python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        env=bench_env(),
    ).stdout
    return len(json.loads(out))


def bench_venv(name: str, py: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """All pairs on one venv, plus a verified snapshot of it."""
    venv_python = setup_venvs.SPECS[name].python
    out = work / f"{name}.envsnap"
    a, mode = envsnap_command(py, venv_python, out)
    env = bench_env()
    print(f"== {name}: {distribution_count(venv_python)} distributions; envsnap via {mode}", flush=True)
    pairs: list[Pair] = []
    for peer in peer_commands(venv_python):
        if args.only and peer.key not in args.only:
            continue
        print(f"  envsnap vs {peer.key}", flush=True)
        pairs.append(run_pair(a, peer, runs=args.runs, warmup=args.warmup, cwd=work, env=env))
    envsnap_runs = [r for p in pairs for r in p.a.runs]
    snapshot = check_snapshot(py, out) if out.exists() else {"error": "no snapshot was written"}
    return {
        "venv": short(setup_venvs.SPECS[name].path),
        "distributions": distribution_count(venv_python),
        "pip": tool_output([str(venv_python), "-m", "pip", "--version"]).split(" from ")[0],
        "envsnap_mode": mode,
        "envsnap_command": a.shown,
        "envsnap_wall_s": summary([r.wall_s for r in envsnap_runs]) if envsnap_runs else None,
        "envsnap_cpu_s": summary([r.cpu_s for r in envsnap_runs]) if envsnap_runs else None,
        "envsnap_max_rss_mib": summary([r.max_rss_kib / 1024 for r in envsnap_runs]) if envsnap_runs else None,
        "pairs": [p.to_json() for p in pairs],
        "snapshot": snapshot,
    }


def bench_inprocess(label: str, python: Path, preload: str, work: Path, runs: int) -> dict[str, Any]:
    """``envsnap.capture.capture()`` in ``runs`` fresh interpreters (one extra warm-up process first)."""
    script = str(BENCH / "inprocess_capture.py")
    argv = [str(python), script, "--preload", preload]
    samples: list[dict[str, Any]] = []
    print(f"== in-process: {label}", flush=True)
    for i in range(runs + 1):
        proc = subprocess.run(argv, cwd=work, env=bench_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return {
                "label": label,
                "python": short(python),
                "error": (proc.stderr or proc.stdout).strip()[-800:],
                "command": " ".join(argv),
            }
        sample = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"    import {sample['import_s']:.3f}s first {sample['first_s']:.3f}s "
            f"warm {statistics.median(sample['warm_s']):.3f}s{'  (warm-up)' if i == 0 else ''}",
            flush=True,
        )
        if i:
            samples.append(sample)
    return {
        "label": label,
        "python": short(python),
        "preload": preload,
        "command": f"{short(python)} bench/inprocess_capture.py --preload '{preload}'",
        "distributions": distribution_count(python),
        "import_s": summary([s["import_s"] for s in samples]),
        "first_s": summary([s["first_s"] for s in samples]),
        "first_cpu_s": summary([s["first_cpu_s"] for s in samples]),
        "warm_s": summary([statistics.median(s["warm_s"]) for s in samples]),
        "write_s": summary([s["write_s"] for s in samples]),
        "preload_s": summary([s["preload_s"] for s in samples]),
        "max_rss_mib": summary([s["max_rss_kib"] / 1024 for s in samples]),
        "probe_errors": samples[-1]["probe_errors"],
        "members": samples[-1]["members"],
    }


def bench_inprocess_compare(ref: str, work: Path, runs: int) -> dict[str, Any]:
    """The ML job's first in-process call with envsnap at git ``ref`` and with this tree, interleaved.

    ``ref`` is checked out into a scratch worktree and put first on ``PYTHONPATH`` (the ml-envsnap venv's
    envsnap is this tree, editable); the two alternate process by process, so load drift hits both.
    """
    python = setup_venvs.SPECS["ml-envsnap"].python
    script = str(BENCH / "inprocess_capture.py")
    tree = work / "compare-ref"
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", ref], capture_output=True, text=True, check=False)
    if commit.returncode != 0:
        return {"ref": ref, "error": one_line(commit.stderr or commit.stdout)}
    subprocess.run([*git, "worktree", "add", "--detach", "-q", str(tree), ref], check=True)
    samples: dict[str, list[dict[str, Any]]] = {"ref": [], "tree": []}
    print(f"== in-process, ML job: {ref} ({commit.stdout.strip()}) vs this tree, interleaved", flush=True)
    try:
        subprocess.run(
            [str(python), "-m", "compileall", "-q", str(tree / "envsnap")], check=True, stdout=subprocess.DEVNULL
        )
        for i in range(runs + 1):
            for label, path in (("ref", tree), ("tree", REPO)):
                env = {**bench_env(), "PYTHONPATH": str(path)}
                argv = [str(python), script, "--preload", ML_PRELOAD]
                proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    return {"ref": ref, "error": one_line(proc.stderr or proc.stdout)}
                if i:
                    samples[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False, capture_output=True)
    firsts = {k: [s["first_s"] for s in v] for k, v in samples.items()}
    cpus = {k: [s["first_cpu_s"] for s in v] for k, v in samples.items()}
    return {
        "ref": ref,
        "commit": commit.stdout.strip(),
        "first_s": {k: summary(v) for k, v in firsts.items()},
        "first_cpu_s": {k: summary(v) for k, v in cpus.items()},
        "cpu_ratio_tree_over_ref": summary([t / r for t, r in zip(cpus["tree"], cpus["ref"], strict=True)]),
        "warm_s": {k: summary([statistics.median(s["warm_s"]) for s in v]) for k, v in samples.items()},
        "ratio_tree_over_ref": summary([t / r for t, r in zip(firsts["tree"], firsts["ref"], strict=True)]),
        "loadavg": os.getloadavg(),
    }


def inprocess_entries(py: Path, work: Path, runs: int) -> list[dict[str, Any]]:
    """The two in-process measurements: the dev venv with nothing preloaded, and an ML job."""
    return [
        bench_inprocess("envsnap dev venv, nothing preloaded", py, "", work, runs),
        bench_inprocess(
            "ML job (ml-envsnap venv), job libraries imported first",
            setup_venvs.SPECS["ml-envsnap"].python,
            ML_PRELOAD,
            work,
            runs,
        ),
    ]


def rerun_inprocess(args: argparse.Namespace, py: Path) -> int:
    """``--inprocess-only``: the in-process figures (and ``--compare-ref``, the stage profile) measured again,
    written into the last results of ``--out`` (the pairs stay those of that run, and the report says so)."""
    out_dir = Path(args.out)
    last = out_dir / "results-capture.json"
    if not last.exists():
        print(f"capture_bench: --inprocess-only needs a previous full run's {short(last)}")
        return 1
    results = json.loads(last.read_text(encoding="utf-8"))
    work = make_workdir()
    try:
        rerun: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_start": os.getloadavg(),
        }
        n = args.inprocess_runs
        results["inprocess"] = inprocess_entries(py, work, n)
        if args.compare_ref:
            results["inprocess_compare"] = bench_inprocess_compare(args.compare_ref, work, max(n, 5))
        results["profile"] = [
            *(e for e in results.get("profile", []) if not str(e.get("label", "")).startswith("in-process")),
            bench_profile("in-process, dev venv", py, work, n),
            bench_profile("in-process, ML job", setup_venvs.SPECS["ml-envsnap"].python, work, n, preload=ML_PRELOAD),
        ]
        rerun["loadavg_end"] = os.getloadavg()
        results["inprocess_rerun"] = rerun
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.pop("goals", None)
    write_reports(results, out_dir)
    print(f"wrote {short(out_dir / 'RESULTS-capture.md')} and {short(out_dir / 'results-capture.json')}")
    return 0


def bench_profile(
    label: str, py: Path, work: Path, runs: int, *, target: Path | None = None, preload: str = ""
) -> dict[str, Any]:
    """Stage-by-stage medians of one capture (bench/profile_capture.py) over fresh processes: a diagnostic."""
    argv = [str(py), str(BENCH / "profile_capture.py")]
    if target is not None:
        argv += ["--python", str(target)]
    if preload:
        argv += ["--preload", preload]
    print(f"== profile: {label}", flush=True)
    samples: list[dict[str, float]] = []
    for i in range(runs + 1):
        proc = subprocess.run(argv, cwd=work, env=bench_env(), capture_output=True, text=True, check=False)
        lines = proc.stdout.strip().splitlines()
        data: dict[str, Any] = (
            json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": proc.stderr[-1500:]}
        )
        if "error" in data:
            return {"label": label, "error": data["error"]}
        if i:  # the first process is the warm-up
            samples.append(data["stages"])
    stages = {name: summary([s[name] for s in samples if name in s]) for name in samples[-1]}
    return {"label": label, "command": " ".join(short(a) for a in argv), "stages": stages}


def bench_startup(py: Path, work: Path, runs: int) -> dict[str, Any]:
    """Fixed costs of the CLI before any capture work: interpreter start, and start + CLI imports."""
    script = str(py.parent / "envsnap")
    commands = [
        Command("python-start", "interpreter start (`python -c pass`)", (str(py), "-c", "pass"), ""),
        Command("cli-version", "`envsnap --version` (start + CLI imports)", (script, "--version"), ""),
    ]
    out: dict[str, Any] = {}
    for command in commands:
        try:
            walls = [run_once(command, cwd=work, env=bench_env()).wall_s for _ in range(runs + 1)][1:]
            out[command.label] = summary(walls)
        except CommandFailed as exc:
            out[command.label] = {"error": str(exc)}
    return out


def tool_versions(py: Path) -> dict[str, str]:
    """Versions of everything measured."""
    return {
        "envsnap": tool_output([str(py), "-c", "from envsnap._version import __version__; print(__version__)"]),
        "envsnap python": tool_output([str(py), "--version"]),
        "measured venvs' python": tool_output([str(setup_venvs.SPECS["ml"].python), "--version"]),
        "cyclonedx-py (cyclonedx-bom)": tool_output([str(TOOLS_BIN / "cyclonedx-py"), "--version"]),
        "cyclonedx-python-lib (in tools venv)": tool_output(
            [
                str(TOOLS_BIN / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('cyclonedx-python-lib'))",
            ]
        ),
        "pipdeptree": tool_output([str(TOOLS_BIN / "pipdeptree"), "--version"]),
        "uv": tool_output([str(TOOLS_BIN / "uv"), "--version"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, write bench/RESULTS-capture.md and bench/results-capture.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="measured pairs per comparison (>= 5)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded warm-up pairs first")
    parser.add_argument("--inprocess-runs", type=int, default=7, help="fresh processes for in-process figures")
    parser.add_argument("--venvs", default=",".join(MEASURED), help="which measured venvs (ml,big)")
    parser.add_argument("--only", default="", help="development: comma-separated peer keys to run")
    parser.add_argument("--envsnap-python", default=None, help="Python with envsnap installed (default .venv)")
    parser.add_argument("--no-setup", action="store_true", help="do not (re)build bench/.venvs first")
    parser.add_argument("--out", default=str(BENCH), help="directory for RESULTS-capture.md and results-capture.json")
    parser.add_argument(
        "--inprocess-only",
        action="store_true",
        help="measure only the in-process figures (and --compare-ref) again, into the last results-capture.json",
    )
    parser.add_argument(
        "--compare-ref", default="", help="also time the ML job's first in-process call at this git ref (before/after)"
    )
    args = parser.parse_args(argv)
    args.only = set(filter(None, args.only.split(",")))
    if args.runs < 5 and not args.only:
        parser.error("--runs must be >= 5 for a full run")
    venvs = [v for v in args.venvs.split(",") if v]
    py = envsnap_python(args.envsnap_python)
    if not py.exists():
        parser.error(f"{py} does not exist: run `make bench` (it creates .venv) or pass --envsnap-python")
    unknown = sorted(set(venvs) - set(MEASURED))
    if unknown:
        parser.error(f"unknown venv(s) {', '.join(unknown)}; measured venvs are {', '.join(MEASURED)}")
    needed = [*venvs, "tools", "ml-envsnap"]
    if not args.no_setup:
        # A missing peer tool is installed, never skipped: setup is idempotent and quick when done.
        failed = setup_venvs.ensure(needed)
        if failed:
            print(f"capture_bench: {failed}; nothing measured")
            return 1
    missing = [name for name in needed if not setup_venvs.SPECS[name].python.exists()]
    if missing:
        print(
            f"capture_bench: skipped, bench/.venvs/{{{','.join(missing)}}} missing (without --no-setup it builds them)"
        )
        return 0

    # envsnap is installed editable: its byte code goes stale with every edit, and with
    # PYTHONDONTWRITEBYTECODE set each measured process would recompile the changed modules in memory
    # (a cost no installed envsnap has). Compile it first, as `make test` and a wheel install do.
    subprocess.run([str(py), "-m", "compileall", "-q", str(REPO / "envsnap")], check=True, stdout=subprocess.DEVNULL)

    if args.inprocess_only:
        return rerun_inprocess(args, py)
    started = time.time()
    work = make_workdir()
    try:
        results: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine(),
            "tools": tool_versions(py),
            "settings": {"runs": args.runs, "warmup": args.warmup, "inprocess_runs": args.inprocess_runs},
            "venvs": {name: bench_venv(name, py, work, args) for name in venvs},
            "inprocess": inprocess_entries(py, work, args.inprocess_runs),
        }
        n = args.inprocess_runs
        if args.compare_ref:
            results["inprocess_compare"] = bench_inprocess_compare(args.compare_ref, work, max(n, 5))
        results["profile"] = [
            *(bench_profile(f"--python {v}", py, work, n, target=setup_venvs.SPECS[v].python) for v in venvs),
            bench_profile("in-process, dev venv", py, work, n),
            bench_profile("in-process, ML job", setup_venvs.SPECS["ml-envsnap"].python, work, n, preload=ML_PRELOAD),
        ]
        results["startup"] = bench_startup(py, work, n)
        results["machine"]["loadavg_end"] = os.getloadavg()
        results["duration_s"] = time.time() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_dir = Path(args.out)
    write_reports(results, out_dir)
    print(f"wrote {short(out_dir / 'RESULTS-capture.md')} and {short(out_dir / 'results-capture.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
