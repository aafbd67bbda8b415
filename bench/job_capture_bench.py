"""Capture of a running job: the churn example job run plain, under ReproZip, and under envsnap.

The job is ``fixtures/example/run_plain.py``: the five churn stages (ingest, preprocess, features, a
scikit-learn predict, a postprocess subprocess) over the example's 20,000 events, run by the job's own pinned
venv ``.cache/demo-venv`` (``make demo`` builds it). It is copied with its code into a scratch git repository
(one commit; data generated there by ``make_data.py``), so that envsnap's git probe and ReproZip's trace see
the same small, stable working tree. Every round runs, each as a fresh child process measured by
``_harness.run_once`` (wall time, CPU time, peak RSS from ``wait4``):

* ``plain``            -- ``python run_plain.py``: the job alone (the yardstick of every ratio);
* ``reprozip-trace``   -- ``reprozip trace -d DIR python run_plain.py``: the job under ptrace;
* ``reprozip-pack``    -- ``reprozip pack -d DIR job.rpz``: ReproZip's capture, after the trace;
* ``envsnap-run``      -- ``envsnap run -c envsnap.toml --python PY --fraction 1.0``: the same five stages on
  all rows, every intermediate recorded, the environment captured;
* ``envsnap-capture``  -- ``envsnap capture --python PY``: the environment alone, from outside the job;
* ``plain-envsnap-venv`` and ``on-failure`` -- the job in ``bench/.venvs/job-envsnap`` (the demo venv's exact
  pins plus envsnap, built here once), plain and wrapped in ``envsnap.on_failure(dir, inputs=...)`` with a
  failure raised after its last stage: the wrapper times the capture itself, from the exception to the
  written snapshot.

Blocks of commands are rotated from round to round (trace and pack stay together), so drifting load hits
them alike; the ratios are taken within a round. The first round is a warm-up.

    .venv/bin/python bench/job_capture_bench.py [--runs 5] [--warmup 1] [--out bench]

Writes ``RESULTS-job-capture.md`` and ``results-job-capture.json``. ReproZip (``reprozip``, PyPI) is installed
into ``bench/.venvs/tools`` when it is missing; a command that cannot run is reported with its error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from _harness import Command, CommandFailed, machine, one_line, run_once, summary, tool_output  # noqa: E402
from job_capture_report import render  # noqa: E402

EXAMPLE = REPO / "fixtures" / "example"
DEMO_PYTHON = REPO / ".cache" / "demo-venv" / "bin" / "python"
JOB_VENV = BENCH / ".venvs" / "job-envsnap"
TOOLS = BENCH / ".venvs" / "tools"
REPROZIP_PIN = "reprozip==1.3.2"
ENVSNAP = REPO / ".venv" / "bin" / "envsnap"

# The job wrapped in envsnap.on_failure; fails after its last stage and prints how long the capture took.
ON_FAILURE_JOB = """
import json, sys, time
from pathlib import Path
import envsnap
sys.path.insert(0, ".")
import run_plain

class JobFailed(RuntimeError):
    pass

out = Path(sys.argv[1])
marks = {}
guard = envsnap.on_failure(out, inputs={"events": ".data/events.parquet"})
try:
    with guard:
        run_plain.main(["--output", sys.argv[2]])
        marks["failed"] = time.perf_counter()
        raise JobFailed("bench: the job fails after its last stage")
except JobFailed:
    marks["captured"] = time.perf_counter()
path = guard.path
print(json.dumps({"capture_s": marks["captured"] - marks["failed"], "snapshot": str(path),
                  "size_bytes": path.stat().st_size if path else None}))
"""


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)


def ensure_reprozip() -> str | None:
    """Install ReproZip into the tools venv when it is missing; None, or why it cannot be used."""
    reprozip = TOOLS / "bin" / "reprozip"
    if reprozip.exists():
        return None
    if not (TOOLS / "bin" / "python").exists():
        return f"{TOOLS} does not exist: run bench/setup_venvs.py tools first"
    print(f"installing {REPROZIP_PIN} into {TOOLS}", flush=True)
    proc = subprocess.run(
        [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", REPROZIP_PIN],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not reprozip.exists():
        return f"pip install {REPROZIP_PIN} failed: {one_line(proc.stderr or proc.stdout)}"
    return None


def ensure_job_venv() -> Path:
    """``bench/.venvs/job-envsnap``: the demo venv's exact pins plus envsnap (editable), built once."""
    frozen = _run([str(DEMO_PYTHON), "-m", "pip", "freeze", "--all"]).stdout
    pins = "\n".join(line for line in frozen.splitlines() if line and not line.startswith(("pip==", "-e ")))
    digest = hashlib.sha256((pins + (REPO / "pyproject.toml").read_text(encoding="utf-8")).encode()).hexdigest()
    stamp = JOB_VENV / ".bench-stamp"
    python = JOB_VENV / "bin" / "python"
    if python.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest:
        return python
    print(f"building {JOB_VENV} (the demo venv's pins + envsnap)", flush=True)
    shutil.rmtree(JOB_VENV, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(JOB_VENV)])
    pins_file = JOB_VENV / "pins.txt"
    pins_file.write_text(pins + "\n", encoding="utf-8")
    _run([str(python), "-m", "pip", "install", "-q", "-r", str(pins_file)])
    # The constraints keep envsnap's own dependencies from moving any of the job's pins.
    _run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO), "-c", str(pins_file)])
    stamp.write_text(digest + "\n", encoding="utf-8")
    return python


def make_project(work: Path) -> Path:
    """The example job in a scratch git repository (code committed, data generated and untracked)."""
    project = work / "job"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".data", "*.pyc"))
    (project / ".gitignore").write_text(".data/\n*.envsnap\n*.parquet\n", encoding="utf-8")
    _run([str(DEMO_PYTHON), "make_data.py"], cwd=project)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "job"]):
        subprocess.run([*git, *args], cwd=project, check=True, capture_output=True)
    return project


def commands(project: Path, out: Path, job_python: Path | None) -> list[list[Command]]:
    """The measured commands in blocks; a block's commands always run in this order, together."""
    py, rz = str(DEMO_PYTHON), str(TOOLS / "bin" / "reprozip")
    trace_dir, rpz = out / "rz-trace", out / "job.rpz"

    def clean(*paths: Path) -> Any:
        def before() -> None:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

        return before

    job = ["run_plain.py", "--output", str(out / "scores.parquet")]
    envsnap_run = (str(ENVSNAP), "run", "-c", "envsnap.toml", "--python", py, "--fraction", "1.0", "-q", "--force")
    blocks = [
        [Command("plain", "plain job", (py, *job), "python run_plain.py")],
        [
            Command(
                "reprozip-trace",
                "reprozip trace (the job under ptrace)",
                (rz, "trace", "--overwrite", "-d", str(trace_dir), py, *job),
                "reprozip trace --overwrite -d DIR python run_plain.py",
                before=clean(trace_dir),
            ),
            Command(
                "reprozip-pack",
                "reprozip pack (after the trace)",
                (rz, "pack", "-d", str(trace_dir), str(rpz)),
                "reprozip pack -d DIR job.rpz",
                before=clean(rpz),
            ),
        ],
        [
            Command(
                "envsnap-run",
                "envsnap run, all rows (job + every intermediate + env capture)",
                (*envsnap_run, "-o", str(out / "job.envsnap")),
                "envsnap run -c envsnap.toml --python .cache/demo-venv/bin/python --fraction 1.0 -o job.envsnap",
            ),
        ],
        [
            Command(
                "envsnap-capture",
                "envsnap capture (env only, from outside the job)",
                (str(ENVSNAP), "capture", "--python", py, "-o", str(out / "env.envsnap")),
                "envsnap capture --python .cache/demo-venv/bin/python -o env.envsnap",
                before=clean(out / "env.envsnap"),
            ),
        ],
    ]
    if job_python is not None:
        jp = str(job_python)
        blocks.append(
            [
                Command("plain-envsnap-venv", "plain job (job-envsnap venv)", (jp, *job), "python run_plain.py"),
                Command(
                    "on-failure",
                    "job under envsnap.on_failure, failing after its last stage",
                    (jp, "-c", ON_FAILURE_JOB, str(out / "failures"), str(out / "scores-f.parquet")),
                    'python -c "with envsnap.on_failure(DIR, inputs=...): run_plain.main(); raise ..."',
                    before=clean(out / "failures"),
                ),
            ]
        )
    return blocks


def bench_env() -> dict[str, str]:
    """The host environment minus what a user's shell would not have (see capture_bench.bench_env)."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_rounds(blocks: list[list[Command]], project: Path, runs: int, warmup: int) -> dict[str, Any]:
    """Every block once per round, the block order rotated per round; failing commands are recorded."""
    env = bench_env()
    series: dict[str, dict[str, Any]] = {
        c.key: {"label": c.label, "command": c.shown, "runs": [], "error": None} for b in blocks for c in b
    }
    for r in range(warmup + runs):
        order = blocks[r % len(blocks) :] + blocks[: r % len(blocks)]
        for block in order:
            for command in block:
                entry = series[command.key]
                if entry["error"] is not None:
                    continue
                try:
                    run = run_once(command, cwd=project, env=env)
                except CommandFailed as exc:
                    entry["error"] = f"{exc}: {one_line(exc.stderr_tail)}"
                    print(f"  round {r}: {command.key} FAILED: {entry['error']}", flush=True)
                    continue
                print(
                    f"  round {r}{' (warm-up)' if r < warmup else ''}: {command.key:<19} {run.wall_s:7.2f} s "
                    f"wall {run.cpu_s:7.2f} s cpu {run.max_rss_kib / 1024:7.0f} MiB",
                    flush=True,
                )
                if r >= warmup:
                    entry["runs"].append({**run.__dict__, "round": r - warmup})
    return series


def on_failure_details(job_python: Path, project: Path, out: Path) -> dict[str, Any]:
    """One more on_failure run with its stdout kept: the capture time measured inside the job, the size."""
    samples = []
    for _ in range(3):
        proc = subprocess.run(
            [str(job_python), "-c", ON_FAILURE_JOB, str(out / "failures"), str(out / "scores-f.parquet")],
            cwd=project,
            env=bench_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return {"error": one_line(proc.stderr or proc.stdout)}
        samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        shutil.rmtree(out / "failures", ignore_errors=True)
    return {"capture_s": summary([s["capture_s"] for s in samples]), "size_bytes": samples[-1]["size_bytes"]}


def ratios(series: dict[str, Any], key: str, base: str) -> dict[str, Any] | None:
    """``key`` ÷ ``base`` within each round (neighbouring runs)."""
    by_round = {r["round"]: r["wall_s"] for r in series[base]["runs"]}
    values = [r["wall_s"] / by_round[r["round"]] for r in series[key]["runs"] if r["round"] in by_round]
    return summary(values) if values else None


def trace_plus_pack(series: dict[str, Any]) -> list[float]:
    """Per round, trace + pack: what it takes to have ReproZip's package of a job."""
    pack = {r["round"]: r["wall_s"] for r in series["reprozip-pack"]["runs"]}
    return [r["wall_s"] + pack[r["round"]] for r in series["reprozip-trace"]["runs"] if r["round"] in pack]


def sizes(out: Path) -> dict[str, int | None]:
    """Sizes of what each tool leaves behind (from the last round)."""

    def size(path: Path) -> int | None:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size if path.exists() else None

    return {
        "reprozip-trace-dir": size(out / "rz-trace"),
        "reprozip-rpz": size(out / "job.rpz"),
        "envsnap-run": size(out / "job.envsnap"),
        "envsnap-capture": size(out / "env.envsnap"),
    }


def snapshot_check(out: Path) -> dict[str, Any]:
    """The envsnap run snapshot through the verifying reader: members and stage statuses."""
    code = (
        "import json, sys, envsnap; s = envsnap.load(sys.argv[1]);"
        "p = s.section('pipeline') or {};"
        "print(json.dumps({'members': len(s.manifest.members),"
        " 'stages': [st.get('status') for st in p.get('stages', [])] if isinstance(p, dict) else None}))"
    )
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code, str(out / "job.envsnap")],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": one_line(proc.stderr)}
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def versions(job_python: Path | None) -> dict[str, str]:
    """Versions of the job's stack and of each capturing tool."""
    return {
        "job python": tool_output([str(DEMO_PYTHON), "--version"]),
        "job packages": tool_output(
            [
                str(DEMO_PYTHON),
                "-c",
                "import numpy, pandas, sklearn, pyarrow; print(f'numpy {numpy.__version__}, pandas "
                "{pandas.__version__}, scikit-learn {sklearn.__version__}, pyarrow {pyarrow.__version__}')",
            ]
        ),
        "reprozip": tool_output([str(TOOLS / "bin" / "reprozip"), "--version"]),
        "envsnap": tool_output([str(ENVSNAP), "--version"]),
        "job-envsnap venv": "built" if job_python else "not built",
    }


def analyse(series: dict[str, Any]) -> dict[str, Any]:
    """Per command: wall/CPU/RSS summaries; per comparison: the within-round ratios to the plain job."""
    out: dict[str, Any] = {}
    for key, entry in series.items():
        runs = entry["runs"]
        out[key] = {
            "label": entry["label"],
            "command": entry["command"],
            "error": entry["error"],
            "wall_s": summary([r["wall_s"] for r in runs]) if runs else None,
            "cpu_s": summary([r["cpu_s"] for r in runs]) if runs else None,
            "max_rss_mib": summary([r["max_rss_kib"] / 1024 for r in runs]) if runs else None,
        }
    comparisons: dict[str, Any] = {}
    for key, base in (
        ("reprozip-trace", "plain"),
        ("envsnap-run", "plain"),
        ("envsnap-capture", "plain"),
        ("on-failure", "plain-envsnap-venv"),
    ):
        if key in series and base in series:
            comparisons[f"{key}/{base}"] = ratios(series, key, base)
    if "reprozip-trace" in series and series["reprozip-pack"]["runs"]:
        plain = {r["round"]: r["wall_s"] for r in series["plain"]["runs"]}
        pack = {r["round"]: r["wall_s"] for r in series["reprozip-pack"]["runs"]}
        both = [
            (r["wall_s"] + pack[r["round"]]) / plain[r["round"]]
            for r in series["reprozip-trace"]["runs"]
            if r["round"] in pack and r["round"] in plain
        ]
        comparisons["reprozip-trace+pack/plain"] = summary(both) if both else None
    return {"commands": out, "ratios": comparisons}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (>= 5 for a full run)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH, help="where the RESULTS/results files go")
    parser.add_argument("--no-on-failure", action="store_true", help="skip the job-envsnap venv and on_failure")
    args = parser.parse_args(argv)
    if not DEMO_PYTHON.exists():
        parser.error(f"{DEMO_PYTHON} does not exist: run `make .cache/demo-venv/.installed` (or make demo)")
    started = time.time()
    facts = machine()
    missing = ensure_reprozip()
    job_python = None if args.no_on_failure else ensure_job_venv()
    work = Path(tempfile.mkdtemp(prefix="envsnap-job-bench-"))
    try:
        project = make_project(work)
        out = work / "out"
        out.mkdir()
        blocks = commands(project, out, job_python)
        if missing:
            blocks = [[c for c in b if not c.key.startswith("reprozip")] for b in blocks]
            blocks = [b for b in blocks if b]
        series = run_rounds(blocks, project, args.runs, args.warmup)
        if missing:
            for key, label in (("reprozip-trace", "reprozip trace"), ("reprozip-pack", "reprozip pack")):
                series[key] = {"label": label, "command": key, "runs": [], "error": missing}
        facts["loadavg_end"] = os.getloadavg()
        results = {
            "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "machine": facts,
            "settings": {"runs": args.runs, "warmup": args.warmup},
            "versions": versions(job_python),
            "series": series,
            "analysis": analyse(series),
            "sizes": sizes(out),
            "snapshot_check": snapshot_check(out),
            "on_failure": on_failure_details(job_python, project, out) if job_python else None,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["duration_s"] = time.time() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results-job-capture.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = render(results)
    (args.out / "RESULTS-job-capture.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
