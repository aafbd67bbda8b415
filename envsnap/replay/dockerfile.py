"""The build context of a replay image: a Dockerfile, the pinned requirements and the wheelhouse.

The image is built in two stages. The first installs the locked wheels offline into ``/opt/venv`` —
with ``uv`` when the wheelhouse has it (``--offline --no-index --require-hashes --compile-bytecode``),
else with the base image's own pip (``--no-index --require-hashes``, which byte-compiles too) — and
the second copies only ``/opt/venv`` onto the same base, so the wheels never reach a layer of the final
image. Bytecode is compiled at build time: replays run on a read-only root.

``envsnap export SNAP --dockerfile DIR`` writes this context; ``docker build DIR`` builds it by hand,
with no network needed.

**The captured image.** When the job ran in a container whose image is known by digest, the replay builds
on that image and installs nothing it already has: the captured interpreter (``plan.image_python``) is used
where it exists in the image, and only the pins it lacks (or has at another version) are installed into its
own environment, in one stage. The engine asks the image first (:data:`INSTALLED_SNIPPET`, run by that
interpreter, and :func:`image_delta`), so that only the missing wheels are gathered and an image that has
them all is used as it is, with no build; ``install.sh`` filters again in the image (``missing.py``), which
is what makes an exported Dockerfile install only what the image lacks.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from envsnap.core.naming import normalize_name
from envsnap.replay.plan import RECIPE_VERSION, ReplayPlan
from envsnap.replay.wheelhouse import Wheelhouse, gather

__all__ = [
    "INSTALLED_SNIPPET",
    "MISSING_SCRIPT",
    "image_delta",
    "image_env",
    "image_labels",
    "install_script",
    "installer_of",
    "mounted_env",
    "python_in_image",
    "render",
    "venv_build_script",
    "warm_modules",
    "write_build_context",
    "write_context",
]

VENV = "/opt/venv"
WHEELS = "/opt/envsnap/wheels"
#: Where a mounted venv's build sees its context (requirements, build.sh) and the cache store.
CTX = "/opt/envsnap/ctx"
STORE = "/opt/envsnap/store"
#: Where every replay of a mounted venv finds its writable byte-code cache (``PYTHONPYCACHEPREFIX``).
PYCACHE = "/opt/envsnap/pycache"

#: ``python -c WARM_SNIPPET MODULE...``: import each module, ignoring failures (compiles their byte code).
WARM_SNIPPET = (
    "import importlib, sys\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except BaseException:\n"
    "        pass\n"
)


#: Run by the captured interpreter in the captured image: its distributions, ``{PEP 503 name: version}``
#: as JSON (Python 3.8+, standard library only).
INSTALLED_SNIPPET = (
    "import json, re, importlib.metadata as m\n"
    "out = {}\n"
    "for d in m.distributions():\n"
    "    name = d.metadata['Name']\n"
    "    if name:\n"
    "        out.setdefault(re.sub(r'[-_.]+', '-', name).lower(), d.version)\n"
    "print(json.dumps(out, sort_keys=True))\n"
)

#: ``missing.py REQUIREMENTS``, run by the captured interpreter in the build: prints the requirement lines
#: (``name==version --hash=...``) of the pins it does not have at that version.
MISSING_SCRIPT = (
    "import re, sys, importlib.metadata as m\n"
    "have = {}\n"
    "for d in m.distributions():\n"
    "    if d.metadata['Name']:\n"
    "        have.setdefault(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version)\n"
    "for line in open(sys.argv[1], encoding='utf-8'):\n"
    "    pin = line.split()[0] if line.strip() and not line.startswith('#') else ''\n"
    "    name, _, version = pin.partition('==')\n"
    "    if pin and have.get(re.sub(r'[-_.]+', '-', name).lower()) != version:\n"
    "        sys.stdout.write(line)\n"
)


def python_in_image(plan: ReplayPlan) -> str:
    """The interpreter the replay runs in the image: the captured one, else the venv's."""
    return plan.image_python or f"{VENV}/bin/python"


def image_delta(plan: ReplayPlan, installed: Mapping[str, str] | None) -> tuple[ReplayPlan, str]:
    """The plan for the captured image, given what its interpreter has (``None``: it is not in the image),
    and a note saying what is installed.

    Only the pins the image lacks, or has at another version, stay in the plan; without the interpreter the
    plan installs every pin into ``/opt/venv`` as for any other base image.
    """
    if not plan.image_python:
        return plan, ""
    if installed is None:
        return (
            replace(plan, image_python=None),
            f"the captured interpreter {plan.image_python} is not in {plan.base_image}: "
            f"every pin is installed into {VENV}",
        )
    keep = tuple(p for p in plan.packages if installed.get(normalize_name(p.name)) != p.version)
    have = len(plan.packages) - len(keep)
    if not keep:
        note = f"the captured image has all {have} pinned package(s) for {plan.image_python}: nothing installed"
    else:
        names = ", ".join(p.pin for p in keep[:10]) + (f", +{len(keep) - 10}" if len(keep) > 10 else "")
        note = (
            f"the captured image has {have} of the {len(plan.packages)} pinned package(s) for "
            f"{plan.image_python}; installing only the {len(keep)} it lacks: {names}"
        )
    return replace(plan, packages=keep), note


def installer_of(wheelhouse: Wheelhouse) -> str:
    return "uv" if wheelhouse.uv is not None else "pip"


def install_script(wheelhouse: Wheelhouse, python: str | None = None) -> str:
    """``install.sh CTX``: the locked wheels under ``CTX/wheels`` installed offline into ``/opt/venv``, or,
    with ``python`` (the captured interpreter of the captured image), those of them it lacks into its own
    environment.

    The same script runs in the Dockerfile (``RUN``) and in the engine's build container. Bytecode is
    compiled here because replays run on a read-only root; the test suites packages ship (``tests/``)
    are left out, as no pipeline imports them, which halves the compile time of an ML stack.
    """
    if python is not None:
        return _install_into(wheelhouse, python)
    if wheelhouse.uv is not None:
        name, version = wheelhouse.uv.filename.split("-")[:2]
        uv = f"/tmp/uv/{name}-{version}.data/scripts/uv"  # noqa: S108 - a path in the build container
        install = (
            f"python3 -m venv --without-pip {VENV}\n"
            f'python3 -m zipfile -e "$CTX/wheels/{wheelhouse.uv.filename}" /tmp/uv\n'
            f"chmod +x {uv}\n"
            f'{uv} pip install --offline --no-index --no-cache --find-links "$CTX/wheels" \\\n'
            f'    --no-deps --require-hashes --python {VENV}/bin/python -r "$CTX/requirements.txt"\n'
            "rm -rf /tmp/uv\n"
        )
    else:
        install = (
            f"python3 -m venv {VENV}\n"
            f"{VENV}/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check --no-compile \\\n"
            f'    --find-links "$CTX/wheels" --no-deps --require-hashes -r "$CTX/requirements.txt"\n'
        )
    return (
        "#!/bin/sh\n"
        "# envsnap: install the locked wheels offline into /opt/venv, then compile their bytecode.\n"
        "set -eu\n"
        'CTX="${1:-/opt/envsnap}"\n'
        "export PIP_NO_INPUT=1 UV_NO_CACHE=1\n"
        f"{install}"
        f"{VENV}/bin/python -m compileall -q -j 0 -x '/tests?/' {VENV}/lib >/dev/null \\\n"
        '    || echo "envsnap: some files did not byte-compile (they compile on import instead)"\n'
    )


def _install_into(wheelhouse: Wheelhouse, python: str) -> str:
    """``install.sh`` for the captured image: only what ``python`` lacks, into its own environment."""
    quoted = python.replace("'", "'\\''")
    if wheelhouse.uv is not None:
        name, version = wheelhouse.uv.filename.split("-")[:2]
        uv = f"/tmp/uv/{name}-{version}.data/scripts/uv"  # noqa: S108 - a path in the build container
        install = (
            f'python3 -m zipfile -e "$CTX/wheels/{wheelhouse.uv.filename}" /tmp/uv 2>/dev/null \\\n'
            f'    || "$PY" -m zipfile -e "$CTX/wheels/{wheelhouse.uv.filename}" /tmp/uv\n'
            f"chmod +x {uv}\n"
            f'{uv} pip install --offline --no-index --no-cache --find-links "$CTX/wheels" \\\n'
            '    --no-deps --require-hashes --python "$PY" -r "$MISSING"\n'
            "rm -rf /tmp/uv\n"
        )
    else:
        install = (
            '"$PY" -m pip install --no-index --no-cache-dir --disable-pip-version-check --no-compile \\\n'
            '    --find-links "$CTX/wheels" --no-deps --require-hashes -r "$MISSING"\n'
        )
    return (
        "#!/bin/sh\n"
        "# envsnap: install offline, into the captured interpreter's environment, the locked wheels it lacks.\n"
        "set -eu\n"
        'CTX="${1:-/opt/envsnap}"\n'
        f"PY='{quoted}'\n"
        "MISSING=/tmp/envsnap-missing.txt\n"
        "export PIP_NO_INPUT=1 UV_NO_CACHE=1 PIP_BREAK_SYSTEM_PACKAGES=1 UV_BREAK_SYSTEM_PACKAGES=1\n"
        '[ -x "$PY" ] || { echo "envsnap: the captured interpreter $PY is not in this image" >&2; exit 3; }\n'
        '"$PY" "$CTX/missing.py" "$CTX/requirements.txt" >"$MISSING"\n'
        'if [ ! -s "$MISSING" ]; then\n'
        '  echo "envsnap: the image already has every pinned package: nothing to install"; exit 0\n'
        "fi\n"
        f"{install}"
        'PURELIB=$("$PY" -c \'import sysconfig; print(sysconfig.get_paths()["purelib"])\')\n'
        '"$PY" -m compileall -q -j 0 -x \'/tests?/\' "$PURELIB" >/dev/null \\\n'
        '    || echo "envsnap: some files did not byte-compile (they compile on import instead)"\n'
    )


def image_env(plan: ReplayPlan | None = None) -> dict[str, str]:
    """The environment every replay image sets (the ``ENV`` line of the Dockerfile, and of the engine's
    commit: values are expanded there); on the captured image, the captured interpreter's directory goes in
    front of the image's own ``PATH``, so that ``python`` is the interpreter the job ran."""
    if plan is not None and plan.image_python:
        return {
            "PATH": f"{posixpath.dirname(plan.image_python)}:$PATH",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/tmp",  # noqa: S108 - the container's tmpfs
        }
    return {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": VENV,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",  # noqa: S108 - the container's tmpfs
    }


#: What the stage runner imports in the replay to hand intermediates over (by distribution).
RUNNER_IMPORTS = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow.parquet"}


def warm_modules(plan: ReplayPlan) -> tuple[str, ...]:
    """The modules whose byte code a new replay venv compiles ahead: what the recorded stages imported and,
    for a pipeline, what the stage runner imports to read and write the intermediates."""
    have = {p.normalized for p in plan.packages}
    runner = [m for dist, m in RUNNER_IMPORTS.items() if dist in have] if plan.mode == "pipeline" else []
    return tuple(sorted({*plan.warm_modules(), *runner}))


def mounted_env() -> dict[str, str]:
    """The environment of a replay on the base image with the cached venv mounted at ``/opt/venv``: what
    the committed image's ``ENV`` says, byte code written to the writable per-venv cache."""
    env = image_env()
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def venv_build_script() -> str:
    """``build.sh OUT WHEELS UV [refresh]``, run in a ``--network none`` container of the base image with the cache
    store mounted at :data:`STORE`: a relocatable venv in ``OUT/venv`` (it is built at one path and mounted
    at ``/opt/venv``: entry points find their Python relative to themselves), the locked wheels installed
    offline, hash-checked, as hard links from uv's cache in the same store, not byte-compiled (byte code is
    written on first import into the per-venv cache)."""
    return (
        "#!/bin/sh\n"
        "# envsnap: build the replay venv into the cache: no network, every wheel hash-checked, no layer.\n"
        "set -eu\n"
        'OUT="$1"; WHEELS="$2"; UV="$3"\n'
        "# A rebuild after a cached file changed: the file may be a hard link into uv's cache, unpack afresh.\n"
        'FRESH=--offline; [ "${4:-}" = refresh ] && FRESH=--refresh\n'
        f'export HOME=/tmp UV_CACHE_DIR="{STORE}/.uv" UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 PIP_NO_INPUT=1\n'
        "umask 022\n"
        '"$UV" venv --quiet --offline --relocatable --python python3 "$OUT/venv"\n'
        '"$UV" pip install "$FRESH" --no-index --find-links "$WHEELS" --no-deps --require-hashes \\\n'
        '    --link-mode hardlink --no-compile --python "$OUT/venv/bin/python" '
        f'-r "{CTX}/requirements.txt"\n'
        '"$OUT/venv/bin/python" -c \'import platform; print("envsnap: python", platform.python_version())\'\n'
    )


def write_build_context(directory: Path, wheelhouse: Wheelhouse) -> None:
    """The context of a mounted venv's build: the hash-pinned requirements and ``build.sh``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "requirements.txt").write_text(
        "# envsnap: the locked set, every file pinned by sha256 (installed with --no-deps --require-hashes)\n"
        + wheelhouse.requirements(),
        encoding="utf-8",
    )
    (directory / "build.sh").write_text(venv_build_script(), encoding="utf-8")
    os.chmod(directory, 0o755)  # noqa: S103 - read by the build container's user


def image_labels(plan: ReplayPlan, installer: str) -> dict[str, str]:
    return {
        "org.envsnap.recipe": str(RECIPE_VERSION),
        "org.envsnap.snapshot": plan.snapshot_id,
        "org.envsnap.fingerprint": plan.fingerprint,
        "org.envsnap.image-key": plan.image_key(installer),
        "org.envsnap.python": plan.python_version,
    }


def render(plan: ReplayPlan, wheelhouse: Wheelhouse) -> str:
    """The Dockerfile text for ``plan`` with ``wheelhouse``."""
    labels = image_labels(plan, installer_of(wheelhouse))
    label_lines = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    if plan.image_python:
        return (
            f"# envsnap replay image (recipe {RECIPE_VERSION}) for snapshot {plan.snapshot_id}"
            f"{' (' + plan.label + ')' if plan.label else ''}\n"
            f"# The image the job ran in, by digest; its interpreter {plan.image_python} gets only the locked\n"
            "# packages it lacks (install.sh asks it first), in one stage.\n"
            "# Build with no network: docker build --network none -t NAME .\n"
            f"FROM {plan.base_image}\n"
            "COPY wheels/ /tmp/envsnap/wheels/\n"
            "COPY requirements.txt install.sh missing.py /tmp/envsnap/\n"
            "RUN sh /tmp/envsnap/install.sh /tmp/envsnap && rm -rf /tmp/envsnap\n"
            f"ENV {' '.join(f'{k}={v}' for k, v in image_env(plan).items())}\n"
            f"LABEL {label_lines}\n"
        )
    return (
        f"# envsnap replay image (recipe {RECIPE_VERSION}) for snapshot {plan.snapshot_id}"
        f"{' (' + plan.label + ')' if plan.label else ''}\n"
        f"# Captured Python {plan.python_implementation} {plan.python_version}; base image from "
        f"{plan.base_image_source}.\n"
        "# Build with no network: docker build --network none -t NAME .\n"
        f"FROM {plan.base_image} AS install\n"
        f"COPY wheels/ {WHEELS}/\n"
        "COPY requirements.txt install.sh /opt/envsnap/\n"
        "RUN sh /opt/envsnap/install.sh /opt/envsnap\n"
        "\n"
        f"FROM {plan.base_image}\n"
        f"COPY --from=install {VENV} {VENV}\n"
        f"ENV {' '.join(f'{k}={v}' for k, v in image_env().items())}\n"
        f"LABEL {label_lines}\n"
    )


def write_context(
    plan: ReplayPlan,
    directory: Path,
    *,
    with_uv: bool = True,
    log: Callable[[str], None] | None = None,
) -> Wheelhouse:
    """Write the build context for ``plan`` into ``directory`` (created; must be empty or absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    wheelhouse = gather(plan, directory / "wheels", with_uv=with_uv, log=log)
    (directory / "requirements.txt").write_text(
        "# envsnap: the locked set, every file pinned by sha256 (installed with --no-deps --require-hashes)\n"
        + wheelhouse.requirements(),
        encoding="utf-8",
    )
    (directory / "install.sh").write_text(install_script(wheelhouse, plan.image_python), encoding="utf-8")
    if plan.image_python:
        (directory / "missing.py").write_text(MISSING_SCRIPT, encoding="utf-8")
    (directory / "Dockerfile").write_text(render(plan, wheelhouse), encoding="utf-8")
    excluded = "".join(f"# {e.name}=={e.version}: {e.reason}\n" for e in plan.excluded)
    if excluded:
        (directory / "EXCLUDED.txt").write_text(
            "# Captured distributions the image does not install (not available from an index):\n" + excluded,
            encoding="utf-8",
        )
    os.chmod(directory, 0o755)  # noqa: S103 - a build context others (the docker daemon) read
    return wheelhouse
