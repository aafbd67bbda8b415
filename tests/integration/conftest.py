"""Real virtualenvs for the capture tests: built once per session, small, from the configured indexes.

* ``index_venv``: ``six`` and ``requests`` (which pulls certifi, charset-normalizer, idna, urllib3), all
  installed from the index;
* ``kinds_venv``: one distribution per PEP 610 origin: an index install, a local directory, a local
  wheel file, an editable project, a git checkout at a commit and a wheel served over HTTP by a local
  server (kept running for the session so that a lock pointing at it can be installed again).

The test projects use flit_core (a tiny build backend fetched through pip's build isolation).
"""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import threading
import venv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

_INSTALLED_SET = (
    "import importlib.metadata as m, json, re;"
    "print(json.dumps(sorted({(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version)"
    " for d in m.distributions()})))"
)


def run(argv: Sequence[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output (not a bare CalledProcessError)."""
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_venv(path: Path) -> Path:
    """A fresh virtualenv with pip; returns its python."""
    venv.create(path, with_pip=True)
    return path / "bin" / "python"


def pip_install(python: Path, *args: str | Path) -> None:
    """``pip install`` into the venv of ``python`` with the host's pip configuration."""
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args])


def installed_set(python: Path) -> set[str]:
    """``name==version`` (normalized names) of every distribution importable by ``python``."""
    # Outside any checkout: ``python -c`` puts the cwd on sys.path, and an egg-info there would count.
    pairs = json.loads(run([python, "-c", _INSTALLED_SET], cwd=python.parent).stdout)
    return {f"{name}=={version}" for name, version in pairs}


def write_project(root: Path, name: str, requires: Sequence[str] = ("six",)) -> Path:
    """A minimal flit_core project ``name`` 0.1.0 in ``root``."""
    module = name.replace("-", "_")
    root.mkdir(parents=True, exist_ok=True)
    deps = ", ".join(json.dumps(r) for r in requires)
    (root / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["flit_core>=3.4,<5"]\n'
        'build-backend = "flit_core.buildapi"\n\n'
        "[project]\n"
        f'name = "{name}"\n'
        'version = "0.1.0"\n'
        'description = "envsnap test project"\n'
        f"dependencies = [{deps}]\n",
        encoding="utf-8",
    )
    (root / f"{module}.py").write_text('"""envsnap test module."""\n', encoding="utf-8")
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@dataclass(frozen=True)
class KindsVenv:
    """A venv holding one distribution of each location kind, and where each came from."""

    python: Path
    local_dir: Path
    wheel_file: Path
    editable_dir: Path
    vcs_repo: Path
    vcs_commit: str
    http_url: str


@pytest.fixture(scope="session")
def index_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python of a venv with six and requests (+ its four dependencies) from the index."""
    python = make_venv(tmp_path_factory.mktemp("index") / "venv")
    pip_install(python, "six", "requests")
    return python


@pytest.fixture(scope="session")
def wheel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(directory, base URL) of a local HTTP server serving that directory, for the whole session."""
    directory = tmp_path_factory.mktemp("served")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield directory, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def kinds_venv(tmp_path_factory: pytest.TempPathFactory, wheel_server: tuple[Path, str]) -> KindsVenv:
    """A venv with site, local (directory and wheel file), editable, vcs and url distributions."""
    base = tmp_path_factory.mktemp("kinds")
    python = make_venv(base / "venv")
    local_dir = write_project(base / "local", "envsnap-t-local")
    editable_dir = write_project(base / "editable", "envsnap-t-editable")
    wheel_project = write_project(base / "wheelproj", "envsnap-t-wheel")
    served_project = write_project(base / "servedproj", "envsnap-t-served", requires=())
    vcs_repo = write_project(base / "vcs", "envsnap-t-vcs")
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
    run([*git, "init", "-q"], cwd=vcs_repo)
    run([*git, "add", "."], cwd=vcs_repo)
    run([*git, "commit", "-q", "-m", "initial"], cwd=vcs_repo)
    commit = run(["git", "rev-parse", "HEAD"], cwd=vcs_repo).stdout.strip()

    wheels = base / "wheels"
    run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, wheel_project, served_project])
    wheel_file = next(wheels.glob("envsnap_t_wheel-*.whl"))
    served_dir, base_url = wheel_server
    served = next(wheels.glob("envsnap_t_served-*.whl"))
    (served_dir / served.name).write_bytes(served.read_bytes())

    pip_install(python, "six", local_dir, wheel_file, f"git+{vcs_repo.as_uri()}@{commit}", f"{base_url}/{served.name}")
    pip_install(python, "-e", editable_dir)
    return KindsVenv(
        python=python,
        local_dir=local_dir,
        wheel_file=wheel_file,
        editable_dir=editable_dir,
        vcs_repo=vcs_repo,
        vcs_commit=commit,
        http_url=f"{base_url}/{served.name}",
    )


class VenvTools:
    """The helpers above, handed to tests as the ``venv_tools`` fixture (conftest modules are not imported)."""

    run = staticmethod(run)
    make_venv = staticmethod(make_venv)
    pip_install = staticmethod(pip_install)
    installed_set = staticmethod(installed_set)
    write_project = staticmethod(write_project)


@pytest.fixture(scope="session")
def venv_tools() -> VenvTools:
    """Helpers to create, fill and inspect real virtualenvs."""
    return VenvTools()


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Path:
    """python of a new venv (pip and setuptools only, as ``python -m venv`` makes it)."""
    return make_venv(tmp_path / "fresh")
