"""conda package names read as PyPI distribution names, for the drift check of conda lockfiles.

conda-forge names most Python packages as PyPI does (``numpy``, ``scikit-learn``), so an unknown name is read
as itself. The exceptions that matter for ML environments are listed here, by hand, because no mapping is
packaged with conda itself (conda-forge's own mapping is a web service): a Python package renamed on the conda
side (``pytorch`` is PyPI's ``torch``, ``python-tzdata`` is ``tzdata``), a conda "base" or metapackage that
carries the PyPI package (``matplotlib-base``, ``tensorflow-gpu``), and a conda package whose name is also a
*different* PyPI package (conda's ``tzdata`` is the IANA database, versioned ``2024a``; conda's ``graphviz``
is the C tool): those have no PyPI counterpart and are never compared with an installed distribution.
The table is documented in docs/config.md; add a row there and here together.
"""

from __future__ import annotations

import re

from envsnap.core.naming import normalize_name

#: conda name -> the PyPI distribution that conda package installs.
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "python-tzdata": "tzdata",
    "py-opencv": "opencv-python",
    "opencv-python-headless": "opencv-python-headless",
    "tensorflow-base": "tensorflow",
    "tensorflow-cpu": "tensorflow",
    "tensorflow-gpu": "tensorflow",
    "tensorflow-estimator": "tensorflow-estimator",
    "pytorch-lightning": "pytorch-lightning",
    "lightning": "lightning",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "python-flatbuffers": "flatbuffers",
    "python-kaleido": "kaleido",
    "pytables": "tables",
    "py-lief": "lief",
    "ruamel_yaml": "ruamel-yaml",
    "pyqt": "pyqt5",
    "jupyter_core": "jupyter-core",
    "typing_extensions": "typing-extensions",
    "importlib_metadata": "importlib-metadata",
}

#: conda packages whose name is a different PyPI distribution (or a conda-only binary build): never compared.
NO_PYPI_COUNTERPART: frozenset[str] = frozenset(
    {
        "tzdata",
        "graphviz",
        "flatbuffers",
        "pytorch-cuda",
        "pytorch-mutex",
        "cuda-version",
        "cudatoolkit",
        "cudnn",
        "nccl",
        "libtorch",
        "libprotobuf",
        "libxgboost",
        "libopencv",
    }
)

#: Prefix of a pin kept under a conda name that has no PyPI counterpart (``conda:tzdata``); ``:`` cannot
#: occur in a PyPI name, so such a pin never meets an installed distribution.
CONDA_ONLY_PREFIX = "conda:"

_CONDA_VERSION_SUFFIX = re.compile(r"^(\d+(?:\.\d+)*)_(\d+)$")


def pypi_name(conda_name: str) -> str | None:
    """The PyPI distribution name (normalized) of a conda package, or None when it has no PyPI counterpart."""
    key = conda_name.strip().lower()
    if key in NO_PYPI_COUNTERPART:
        return None
    return normalize_name(CONDA_TO_PYPI.get(key, key))


def pin_key(conda_name: str) -> str:
    """The key a conda package's pin is stored under: its PyPI name, or ``conda:NAME`` when it has none."""
    mapped = pypi_name(conda_name)
    return mapped if mapped is not None else CONDA_ONLY_PREFIX + normalize_name(conda_name)


def pypi_version(conda_version: str) -> str:
    """A conda version as PyPI would write it: the build string dropped (``1.26.4=py311h...`` -> ``1.26.4``)
    and a ``_N`` packaging-revision suffix too (``1.2.3_1`` -> ``1.2.3``: the same upstream release)."""
    version = conda_version.strip().split("=", 1)[0].split(" ", 1)[0]
    match = _CONDA_VERSION_SUFFIX.match(version)
    return match.group(1) if match else version


__all__ = [
    "CONDA_ONLY_PREFIX",
    "CONDA_TO_PYPI",
    "NO_PYPI_COUNTERPART",
    "pin_key",
    "pypi_name",
    "pypi_version",
]
