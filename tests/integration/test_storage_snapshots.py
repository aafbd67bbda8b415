"""Snapshots on S3 through the CLI, exactly as users run it: ``envsnap ... s3://bucket/key.envsnap`` with the
standard AWS variables pointing at a real S3-compatible server (moto's, on 127.0.0.1, authentication on).

Every command that reads a snapshot takes the URI (show, verify, export, diff, replay, bisect, check,
shrink); every command that writes one takes it for ``-o`` (capture, run, shrink). Writes are atomic (an
upload cut midway or killed leaves no object under the final key) and never replace without ``--force``;
``show`` of a large snapshot fetches a small fraction of it (bytes counted on the wire by a relay);
bad input is one line, exit 3, nothing written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import make_venv, pip_install
from tests.integration.replay_env import docker_base, git_project, replay_python  # noqa: F401 - fixtures
from tests.integration.s3_env import S3Server, s3_server  # noqa: F401 - fixture
from tests.integration.s3_proxy import Relay, relay

pytestmark = pytest.mark.slow
ENVSNAP = [sys.executable, "-m", "envsnap"]
HERE = Path(__file__).resolve().parent
PREFIX = "h3-snapshots"


def environment(server: S3Server, **overrides: str | None) -> dict[str, str]:
    """This process's environment with the server's AWS variables (and ``overrides``; None removes one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def cli(
    server: S3Server, *args: str | Path, cwd: Path | None = None, **overrides: str | None
) -> subprocess.CompletedProcess[str]:
    """``envsnap ARGS`` as a user with the server's AWS variables runs it."""
    env = environment(server, **overrides)
    return subprocess.run(
        [*ENVSNAP, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600
    )


def uri(server: S3Server, name: str) -> str:
    return f"s3://{server.bucket}/{PREFIX}/{name}"


def keys(server: S3Server, under: str = PREFIX) -> list[str]:
    """Every key under ``under`` (pyarrow's empty directory markers left out)."""
    listed = server.client().list_objects_v2(Bucket=server.bucket, Prefix=under)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/"))


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("envsnap: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return git_project(tmp_path_factory.mktemp("s3-snapshots") / "proj")


@pytest.fixture(scope="module")
def good(s3_server: S3Server, project: Path, replay_python: Path) -> str:  # noqa: F811
    """The test pipeline recorded by ``envsnap run -o s3://...`` (the snapshot is written after the job)."""
    target = uri(s3_server, "good.envsnap")
    proc = cli(
        s3_server, "run", "--config", project / "envsnap.toml", "--python", replay_python, "-o", target, cwd=project
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {target}" in proc.stdout
    return target


@pytest.fixture(scope="module")
def big(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    """A ~12 MB snapshot on S3 (an incompressible sampled input) and the parquet it was captured from."""
    root = tmp_path_factory.mktemp("s3-big")
    data = root / "big.parquet"
    rows = 160_000
    blobs = pa.array([os.urandom(64) for _ in range(rows)], pa.binary())
    pq.write_table(pa.table({"id": pa.array(range(rows), pa.int64()), "blob": blobs}), data, compression="none")
    target = uri(s3_server, "big.envsnap")
    proc = cli(s3_server, "capture", "-o", target, "--input", f"big={data}", "--fraction", "1.0", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return target, data


@pytest.fixture
def counting(s3_server: S3Server) -> Iterator[Relay]:  # noqa: F811
    with relay(s3_server.endpoint) as state:
        yield state


def test_every_reader_takes_an_s3_uri(s3_server: S3Server, good: str, tmp_path: Path) -> None:  # noqa: F811
    shown = cli(s3_server, "show", good)
    assert shown.returncode == 0, shown.stderr
    assert f"snapshot    {good}" in shown.stdout
    verified = cli(s3_server, "verify", good)
    assert verified.returncode == 0 and verified.stdout.startswith(f"OK {good}: "), verified.stderr
    lock = tmp_path / "requirements.txt"
    exported = cli(s3_server, "export", good, "-r", lock)
    assert exported.returncode == 0, exported.stderr
    assert "pytz==2025.2" in lock.read_text()
    # the same snapshot, downloaded: diff of the S3 object against the local copy finds no difference
    local = tmp_path / "good.envsnap"
    s3_server.client().download_file(s3_server.bucket, f"{PREFIX}/good.envsnap", str(local))  # type: ignore[attr-defined]
    diffed = cli(s3_server, "diff", good, local, "--json")
    assert diffed.returncode == 0, diffed.stderr
    assert "no environment difference" in json.loads(diffed.stdout)["verdict"], diffed.stdout


def test_capture_refuses_an_existing_key_without_force(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    target = uri(s3_server, "captured.envsnap")
    first = cli(s3_server, "capture", "-o", target, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/captured.envsnap")  # type: ignore[attr-defined]
    line = one_line_error(cli(s3_server, "capture", "-o", target, cwd=tmp_path))
    assert "already exists" in line and "--force" in line
    after = s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/captured.envsnap")  # type: ignore[attr-defined]
    assert after["ETag"] == before["ETag"]
    forced = cli(s3_server, "capture", "-o", target, "--force", "--label", "second", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    shown = cli(s3_server, "show", target, "--json")
    assert json.loads(shown.stdout)["manifest"]["label"] == "second"
    assert not [k for k in keys(s3_server) if ".envsnap-upload-" in k]  # no temporary object left


def test_run_command_writes_after_the_job_and_checks_before_it(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    target = uri(s3_server, "command.envsnap")
    job = [sys.executable, "-c", "import pathlib; pathlib.Path('ran').touch()"]
    first = cli(s3_server, "run", "-o", target, "--", *job, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "ran").exists() and f"snapshot {target}" in first.stderr
    (tmp_path / "ran").unlink()
    line = one_line_error(cli(s3_server, "run", "-o", target, "--", *job, cwd=tmp_path))
    assert "already exists" in line
    assert not (tmp_path / "ran").exists()  # refused before the job ran
    assert cli(s3_server, "verify", target).returncode == 0


def test_show_fetches_a_small_fraction_of_a_large_snapshot(
    s3_server: S3Server,  # noqa: F811
    big: tuple[str, Path],
    counting: Relay,
) -> None:
    target, _ = big
    size = s3_server.client().head_object(Bucket=s3_server.bucket, Key=target.split("/", 3)[3])["ContentLength"]  # type: ignore[attr-defined]
    assert size > 10_000_000
    shown = cli(s3_server, "show", target, AWS_ENDPOINT_URL=counting.endpoint)
    assert shown.returncode == 0, shown.stderr
    fetched, requests = counting.down, counting.connections
    print(f"show: {fetched} of {size} bytes ({fetched / size:.2%}), {requests} requests")
    assert fetched < size * 0.02, (fetched, size)
    assert requests <= 10, requests
    # the relay really counts: verify reads every member
    counting.reset()
    verified = cli(s3_server, "verify", target, AWS_ENDPOINT_URL=counting.endpoint)
    assert verified.returncode == 0, verified.stderr
    print(f"verify: {counting.down} of {size} bytes, {counting.connections} requests")
    assert size <= counting.down < size * 1.1


@pytest.mark.parametrize("how", ["cut", "killed"])
def test_an_interrupted_upload_leaves_no_object(
    s3_server: S3Server,  # noqa: F811
    big: tuple[str, Path],
    counting: Relay,
    tmp_path: Path,
    how: str,
) -> None:
    """The endpoint goes away halfway through the upload, or the process is killed a third of the way in."""
    _, data = big
    target = uri(s3_server, f"{how}.envsnap")
    argv = ("capture", "-o", target, "--input", f"big={data}", "--fraction", "1.0")
    if how == "cut":
        counting.cut_after_up = data.stat().st_size // 2
        line = one_line_error(cli(s3_server, *argv, cwd=tmp_path, AWS_ENDPOINT_URL=counting.endpoint))
        assert counting.cut.is_set() and "while uploading" in line, line
    else:
        env = environment(s3_server, AWS_ENDPOINT_URL=counting.endpoint)
        proc = subprocess.Popen([*ENVSNAP, *argv], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while counting.up < data.stat().st_size // 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "the capture ended before the upload was under way"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert f"{PREFIX}/{how}.envsnap" not in keys(s3_server)
    # the temporary upload is invisible to readers
    assert "no such snapshot object" in one_line_error(cli(s3_server, "show", target))


def test_replay_venv_of_an_s3_snapshot(s3_server: S3Server, good: str) -> None:  # noqa: F811
    proc = cli(s3_server, "replay", good, "--engine", "venv", "--until", "summarize", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["status"] for s in doc["stages"]] == ["match", "match", "match", "skipped"]


def test_replay_docker_of_an_s3_snapshot(s3_server: S3Server, good: str, docker_base: str) -> None:  # noqa: F811
    """The container needs no S3 access (network none): the host reads the members it mounts."""
    proc = cli(s3_server, "replay", good, "--base-image", docker_base, "--until", "summarize", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [s["status"] for s in json.loads(proc.stdout)["stages"]] == ["match", "match", "match", "skipped"]


def test_check_against_an_s3_baseline(
    s3_server: S3Server,  # noqa: F811
    good: str,
    project: Path,
    replay_python: Path,  # noqa: F811
) -> None:
    run = uri(s3_server, "check-run.envsnap")
    proc = cli(s3_server, "check", good, "--python", replay_python, "-o", run, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
    assert cli(s3_server, "verify", run).returncode == 0
    updated = uri(s3_server, "baseline-2.envsnap")
    argv = ("baseline", "update", good, "--python", replay_python, "-m", "refresh", "-o", updated)
    proc = cli(s3_server, *argv, cwd=project)
    assert proc.returncode == 0 and f"wrote {updated}" in proc.stdout, proc.stderr


def test_bisect_of_two_s3_snapshots(
    s3_server: S3Server,  # noqa: F811
    good: str,
    project: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bad_python = make_venv(tmp_path_factory.mktemp("s3-bad-venv") / "venv")
    pip_install(bad_python, "pyarrow==20.0.0", "pytz==2019.1")
    bad = uri(s3_server, "bad.envsnap")
    recorded = cli(
        s3_server, "run", "--config", project / "envsnap.toml", "--python", bad_python, "-o", bad, cwd=project
    )
    assert recorded.returncode == 0, recorded.stderr
    proc = cli(s3_server, "bisect", good, bad, "--engine", "venv", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert "pytz" in json.dumps(doc["culprit"]), doc


def test_shrink_reads_and_writes_s3(
    s3_server: S3Server,  # noqa: F811
    replay_python: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.integration.bisect_env import git_project as plain_project

    project = plain_project(HERE / "shrink_project", tmp_path_factory.mktemp("s3-shrink") / "proj", data="none")
    values = [float(i % 97) for i in range(200)]
    values[137] = -999.0
    pq.write_table(pa.table({"id": pa.array(range(200), pa.int64()), "value": values}), project / "rows.parquet")
    failing = uri(s3_server, "failing.envsnap")
    config = project / "envsnap.toml"
    argv = ("run", "--config", config, "--python", replay_python, "-o", failing, "--rows", "200")
    recorded = cli(s3_server, *argv, cwd=project)
    assert recorded.returncode == 1, recorded.stderr  # the stage fails on purpose; the snapshot is written
    minimal = uri(s3_server, "failing.shrunk.envsnap")
    proc = cli(s3_server, "shrink", failing, "--engine", "venv", "-o", minimal, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["rows_kept"] == 1 and doc["output"] == minimal
    again = one_line_error(cli(s3_server, "shrink", failing, "--engine", "venv", "-o", minimal))
    assert "already exists" in again
    assert cli(s3_server, "verify", minimal).returncode == 0


@pytest.fixture(scope="module")
def not_snapshots(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    root = tmp_path_factory.mktemp("s3-not-snapshots")
    garbage = root / "garbage.bin"
    garbage.write_bytes(os.urandom(5000))
    table = root / "table.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), table)
    client: Any = s3_server.client()
    client.upload_file(str(garbage), s3_server.bucket, f"{PREFIX}/garbage.envsnap")
    client.upload_file(str(table), s3_server.bucket, f"{PREFIX}/table.envsnap")
    return {"garbage": uri(s3_server, "garbage.envsnap"), "parquet": uri(s3_server, "table.envsnap")}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage", "not an envsnap archive"),
        ("parquet", "not an envsnap archive"),
        ("missing-key", "no such snapshot object"),
        ("missing-bucket", "bucket 'no-such-bucket' does not exist"),
        ("wrong-secret", "access denied"),
        ("bad-session-token", "an expired or invalid AWS_SESSION_TOKEN"),
        ("no-credentials", "no AWS credentials"),
        ("refusing-endpoint", "cannot reach http://127.0.0.1:9"),
    ],
)
def test_bad_reads_are_one_line(
    s3_server: S3Server,  # noqa: F811
    not_snapshots: dict[str, str],
    case: str,
    expected: str,
) -> None:
    target = not_snapshots.get(case) or uri(s3_server, "missing.envsnap")
    overrides: dict[str, str | None] = {}
    if case == "missing-bucket":
        target = "s3://no-such-bucket/a.envsnap"
    elif case == "wrong-secret":
        overrides["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-value"
    elif case == "bad-session-token":
        overrides["AWS_SESSION_TOKEN"] = "FwoGZXIvYXdzEBYaDH" + "x" * 100
    elif case == "no-credentials":
        overrides.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    elif case == "refusing-endpoint":
        overrides["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    for command in ("show", "verify"):
        line = one_line_error(cli(s3_server, command, target, **overrides))
        assert expected in line, line
        assert "wrong-secret-value" not in line and s3_server.secret_key not in line


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("prefix", "names a prefix, not an object"),
        ("no-suffix", "end the key with .envsnap"),
        ("missing-bucket", "bucket 'no-such-bucket' does not exist"),
        ("wrong-secret", "access denied"),
        ("no-credentials", "no AWS credentials"),
        ("refusing-endpoint", "cannot reach http://127.0.0.1:9"),
        ("runs", "written with --mlflow"),
    ],
)
def test_bad_destinations_are_one_line_and_nothing_is_written(
    s3_server: S3Server,  # noqa: F811
    case: str,
    expected: str,
    tmp_path: Path,
) -> None:
    target = {
        "prefix": uri(s3_server, "dir/"),
        "no-suffix": uri(s3_server, "plain-key"),
        "missing-bucket": "s3://no-such-bucket/a.envsnap",
        "runs": "runs:/0123456789abcdef/envsnap",
    }.get(case, uri(s3_server, f"{case}.envsnap"))
    overrides: dict[str, str | None] = {
        "wrong-secret": {"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"},
        "no-credentials": {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
        "refusing-endpoint": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    }.get(case, {})
    before = keys(s3_server)
    line = one_line_error(cli(s3_server, "capture", "-o", target, cwd=tmp_path, **overrides))
    assert expected in line, line
    assert keys(s3_server) == before
    assert list(tmp_path.iterdir()) == []  # nothing local either (no "s3:" directory)
