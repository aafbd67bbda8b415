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

VENV = "/opt/venv"
WHEELS = "/opt/envsnap/wheels"


def installer_of(wheelhouse: Wheelhouse) -> str:
    return "uv" if wheelhouse.uv is not None else "pip"


def render(plan: ReplayPlan, wheelhouse: Wheelhouse) -> str:
    """The Dockerfile text for ``plan`` with ``wheelhouse``."""
    labels = {
        "org.envsnap.recipe": str(RECIPE_VERSION),
        "org.envsnap.snapshot": plan.snapshot_id,
        "org.envsnap.fingerprint": plan.fingerprint,
        "org.envsnap.image-key": plan.image_key(installer_of(wheelhouse)),
        "org.envsnap.python": plan.python_version,
    }
    label_lines = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    if wheelhouse.uv is not None:
        name, version = wheelhouse.uv.filename.split("-")[:2]
        uv_dir = f"/tmp/uv/{name}-{version}.data"  # noqa: S108 - a path in the build container, not here
        install = (
            f"RUN python3 -m venv --without-pip {VENV} \\\n"
            f" && python3 -m zipfile -e {WHEELS}/{wheelhouse.uv.filename} /tmp/uv \\\n"
            f" && chmod +x {uv_dir}/scripts/uv \\\n"
            f" && {uv_dir}/scripts/uv pip install --offline --no-index --no-cache --find-links {WHEELS} \\\n"
            f"      --no-deps --require-hashes --compile-bytecode --python {VENV}/bin/python \\\n"
            f"      -r /opt/envsnap/requirements.txt \\\n"
            f" && rm -rf /tmp/uv"
        )
    else:
        install = (
            f"RUN python3 -m venv {VENV} \\\n"
            f" && {VENV}/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check \\\n"
            f"      --find-links {WHEELS} --no-deps --require-hashes -r /opt/envsnap/requirements.txt"
        )
    return (
        f"# envsnap replay image (recipe {RECIPE_VERSION}) for snapshot {plan.snapshot_id}"
        f"{' (' + plan.label + ')' if plan.label else ''}\n"
        f"# Captured Python {plan.python_implementation} {plan.python_version}; base image from "
        f"{plan.base_image_source}.\n"
        "# Build with no network: docker build --network none -t NAME .\n"
        f"FROM {plan.base_image} AS install\n"
        f"COPY wheels/ {WHEELS}/\n"
        "COPY requirements.txt /opt/envsnap/requirements.txt\n"
        "ENV PIP_NO_INPUT=1 UV_NO_CACHE=1\n"
        f"{install}\n"
        "\n"
        f"FROM {plan.base_image}\n"
        f"COPY --from=install {VENV} {VENV}\n"
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\\n"
        f"    VIRTUAL_ENV={VENV} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp\n"
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
    (directory / "Dockerfile").write_text(render(plan, wheelhouse), encoding="utf-8")
    excluded = "".join(f"# {e.name}=={e.version}: {e.reason}\n" for e in plan.excluded)
    if excluded:
        (directory / "EXCLUDED.txt").write_text(
            "# Captured distributions the image does not install (not available from an index):\n" + excluded,
            encoding="utf-8",
        )
    os.chmod(directory, 0o755)  # noqa: S103 - a build context others (the docker daemon) read
    return wheelhouse
