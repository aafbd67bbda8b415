"""Real engines for the fleet tests and bench/fleet_bench.py: a "drifted" virtualenv and a local Ray
cluster of several nodes on 127.0.0.1.

Every process started here is ended by its own pid (``ray start --block`` takes its raylet, GCS and
agents down with it on SIGTERM); nothing is stopped by name, so other Ray users on the machine are safe.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

#: The package version that the drifted venv shadows (the dev venv has another six).
DRIFT_PIN = "six==1.16.0"
STARTUP_TIMEOUT_S = 90

# Ray replaces a loopback --node-ip-address with this machine's routable address when it joins a
# cluster, and its gRPC servers then listen on 0.0.0.0. Keeping 127.0.0.1 makes every server listen on
# the loopback interface only: the test cluster is reachable from this machine and nowhere else.
_LAUNCHER = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv[0] = "ray"
main()
"""

# Imported by every Python process of a node started with it on PYTHONPATH: a Ray *worker* hangs (the
# node's raylet and agents start normally), after touching a marker file, until the node is killed.
_HANGING_SITECUSTOMIZE = """
import os, time
try:
    with open("/proc/self/cmdline", "rb") as fh:
        worker = b"default_worker.py" in fh.read()
except OSError:
    worker = False
if worker and os.environ.get("ENVSNAP_TEST_HANG_MARKER"):
    open(os.environ["ENVSNAP_TEST_HANG_MARKER"], "a").close()
    time.sleep(600)
"""


def drift_venv(root: Path) -> str:
    """A venv whose own site-packages holds six 1.16.0 and that sees the dev venv's packages (ray, pyspark)
    after its own; envsnap is NOT importable from it (the editable install's .pth is not processed there)."""
    python = root / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(root)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DRIFT_PIN], check=True)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        Path(purelib, "zz_dev_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return str(python)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RayNode:
    """One ``ray start --block`` process and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def started(self) -> bool:
        return "Ray runtime started" in self.log.read_text(errors="replace")


@dataclass
class LocalRayCluster:
    """A Ray cluster of nodes on 127.0.0.1, each its own ``ray start --block`` process."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="esr", dir="/tmp")))
    port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, python: str, args: list[str], env: dict[str, str] | None) -> RayNode:
        launcher = self.root / "launcher.py"
        launcher.write_text(_LAUNCHER, encoding="utf-8")
        log = self.root / f"node{len(self.nodes)}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "OMP_", "VIRTUAL_ENV"))}
        environ.update({"RAY_USAGE_STATS_ENABLED": "0", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
        with log.open("wb") as out:
            process = subprocess.Popen(
                [python, str(launcher), "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                 "--num-cpus=1", "--dashboard-agent-listen-port=0", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ, cwd=self.root,
                start_new_session=True,
            )  # fmt: skip
        node = RayNode(process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not node.started():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.25)
        return node

    def start_head(self, python: str = sys.executable, env: dict[str, str] | None = None) -> RayNode:
        return self._start(
            python,
            ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.root / 't'}",
             f"--ray-client-server-port={free_port()}"],
            env,
        )  # fmt: skip

    def add_node(self, python: str = sys.executable, env: dict[str, str] | None = None) -> RayNode:
        return self._start(python, [f"--address={self.address}"], env)

    def add_hanging_node(self, marker: Path) -> RayNode:
        """A node whose workers hang at start-up (touching ``marker`` first) until it is killed."""
        site = self.root / "hang"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(_HANGING_SITECUSTOMIZE, encoding="utf-8")
        return self.add_node(env={"PYTHONPATH": str(site), "ENVSNAP_TEST_HANG_MARKER": str(marker)})

    def kill(self, node: RayNode) -> None:
        """End one node (SIGTERM to its ``ray start --block``, which takes its processes down)."""
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait()

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            self.kill(node)
        shutil.rmtree(self.root, ignore_errors=True)


def driver_env() -> dict[str, str]:
    """The environment of a driver process that connects to the loopback cluster: Ray must not turn
    127.0.0.1 into the machine's routable address (it would find no GCS there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env
