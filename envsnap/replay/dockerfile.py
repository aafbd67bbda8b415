"""The build context of a replay image: a Dockerfile, the pinned requirements and the wheelhouse.

The image is built in two stages. The first installs the locked wheels offline into ``/opt/venv`` —
with ``uv`` when the wheelhouse has it (``--offline --no-index --require-hashes --compile-bytecode``),
else with the base image's own pip (``--no-index --require-hashes``, which byte-compiles too) — and
the second copies only ``/opt/venv`` onto the same base, so the wheels never reach a layer of the final
image. Bytecode is compiled at build time: replays run on a read-only root.

``envsnap export SNAP --dockerfile DIR`` writes this context; ``docker build DIR`` builds it by hand,
with no network needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from envsnap.replay.plan import RECIPE_VERSION, ReplayPlan
from envsnap.replay.wheelhouse import Wheelhouse, gather

__all__ = ["image_env", "image_labels", "install_script", "installer_of", "render", "write_context"]

VENV = "/opt/venv"
WHEELS = "/opt/envsnap/wheels"


def installer_of(wheelhouse: Wheelhouse) -> str:
    return "uv" if wheelhouse.uv is not None else "pip"


def install_script(wheelhouse: Wheelhouse) -> str:
    """``install.sh CTX``: the locked wheels under ``CTX/wheels`` installed offline into ``/opt/venv``.

    The same script runs in the Dockerfile (``RUN``) and in the engine's build container. Bytecode is
    compiled here because replays run on a read-only root; the test suites packages ship (``tests/``)
    are left out, as no pipeline imports them, which halves the compile time of an ML stack.
    """
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


def image_env() -> dict[str, str]:
    """The environment every replay image sets (also the ``ENV`` line of the Dockerfile)."""
    return {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": VENV,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",  # noqa: S108 - the container's tmpfs
    }


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
    (directory / "install.sh").write_text(install_script(wheelhouse), encoding="utf-8")
    (directory / "Dockerfile").write_text(render(plan, wheelhouse), encoding="utf-8")
    excluded = "".join(f"# {e.name}=={e.version}: {e.reason}\n" for e in plan.excluded)
    if excluded:
        (directory / "EXCLUDED.txt").write_text(
            "# Captured distributions the image does not install (not available from an index):\n" + excluded,
            encoding="utf-8",
        )
    os.chmod(directory, 0o755)  # noqa: S103 - a build context others (the docker daemon) read
    return wheelhouse
