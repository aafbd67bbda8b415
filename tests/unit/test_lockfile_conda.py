"""conda lockfiles: conda names read as PyPI names, conda's version forms, platforms as markers; written in the
forms the conda formats document (conda's "Managing environments" environment.yml with a pip: list, and
conda-lock's unified conda-lock.yml), since conda cannot resolve here."""

from __future__ import annotations

from envsnap.capture.conda_names import CONDA_TO_PYPI, NO_PYPI_COUNTERPART, pin_key, pypi_name, pypi_version
from envsnap.capture.lockfile_parsers import parse_lockfile
from envsnap.capture.lockfiles import disagreements

LINUX_311 = {
    "python_full_version": "3.11.7",
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
MAC_311 = {**LINUX_311, "sys_platform": "darwin", "platform_machine": "arm64"}

ENVIRONMENT_YML = """\
name: stats2
channels:
  - javascript
  - conda-forge
dependencies:
  - python=3.11
  - bokeh=2.4.2
  - conda-forge::numpy=1.26.4=py311h64a7726_0
  - pytorch::pytorch=2.1.2
  - python-tzdata=2024.1
  - tzdata=2024a
  - py-opencv 4.9.0
  - pytorch-lightning=2.1.3
  - tensorflow-base>=2.15
  - flask
  - pip
  - pip:
    - Flask-Testing==0.8.1
    - -e ./local_pkg
"""

CONDA_LOCK = """\
version: 1
metadata:
  content_hash:
    linux-64: 6f1c2a
    osx-arm64: 2b7e9d
  channels:
  - url: conda-forge
    used_env_vars: []
  platforms:
  - linux-64
  - osx-arm64
  sources:
  - environment.yml
package:
- name: pytorch
  version: 2.1.2
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://conda.anaconda.org/conda-forge/linux-64/pytorch-2.1.2-cuda118py311h.conda
  hash:
    md5: 0c4c5b3d
    sha256: 9a0a8bbd
  category: main
  optional: false
- name: pytorch
  version: 2.1.0
  manager: conda
  platform: osx-arm64
  dependencies: {}
  url: https://conda.anaconda.org/conda-forge/osx-arm64/pytorch-2.1.0-cpu_generic_py311h.conda
  hash:
    md5: 1d2e3f4a
    sha256: 5b6c7d8e
  category: main
  optional: false
- name: tzdata
  version: 2024a
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://conda.anaconda.org/conda-forge/noarch/tzdata-2024a-h0c530f3_0.conda
  hash:
    md5: 161081fc
    sha256: 7b2b69c5
  category: main
  optional: false
- name: python-tzdata
  version: '2024.1'
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://conda.anaconda.org/conda-forge/noarch/python-tzdata-2024.1-pyhd8ed1ab_0.conda
  hash:
    md5: 98206ea9
    sha256: 9da9a849
  category: main
  optional: false
- name: requests
  version: 2.31.0
  manager: pip
  platform: linux-64
  dependencies: {}
  url: https://files.pythonhosted.org/packages/requests-2.31.0-py3-none-any.whl
  hash:
    sha256: 58cd2187
  category: main
  optional: false
"""


def _names(kind: str, text: str, installed: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    parsed = parse_lockfile(kind, text)
    return {d["name"]: d["message"] for d in disagreements("lock", parsed, installed, env)}


def test_name_table_covers_the_common_ml_renames() -> None:
    assert pypi_name("pytorch") == "torch"
    assert pypi_name("python-tzdata") == "tzdata"
    assert pypi_name("py-opencv") == "opencv-python"
    assert pypi_name("pytorch-lightning") == "pytorch-lightning"
    assert {pypi_name(n) for n in ("tensorflow-base", "tensorflow-gpu", "tensorflow-cpu")} == {"tensorflow"}
    assert pypi_name("matplotlib-base") == "matplotlib" and pypi_name("py-xgboost") == "xgboost"
    assert pypi_name("scikit-learn") == "scikit-learn"  # conda-forge uses the PyPI name for most packages
    assert pypi_name("tzdata") is None and pin_key("tzdata") == "conda:tzdata"
    assert pypi_name("pytorch-cuda") is None
    assert not NO_PYPI_COUNTERPART & set(CONDA_TO_PYPI)  # a name is renamed or uncompared, never both


def test_conda_version_forms() -> None:
    assert pypi_version("1.26.4=py311h64a7726_0") == "1.26.4"
    assert pypi_version("1.2.3_1") == "1.2.3"
    assert pypi_version("2024a") == "2024a"


def test_environment_yml_reads_conda_names_as_pypi() -> None:
    parsed = parse_lockfile("conda-environment", ENVIRONMENT_YML)
    assert parsed.pins["torch"] == "2.1.2" and parsed.pins["numpy"] == "1.26.4"
    assert parsed.pins["tzdata"] == "2024.1" and parsed.pins["conda:tzdata"] == "2024a"
    assert parsed.pins["opencv-python"] == "4.9.0" and parsed.requirements["tensorflow"] == ">=2.15"
    assert "conda pytorch read as PyPI torch" in parsed.notes
    assert "conda tzdata: no PyPI counterpart, not compared" in parsed.notes
    # the editable of the pip: list is named by its line in the YAML file
    assert "line 19: pip: editable requirement not compared" in parsed.notes
    installed = {"torch": "2.0.0", "tzdata": "2024.1", "numpy": "1.26.4", "opencv-python": "4.9.0.80"}
    found = _names("conda-environment", ENVIRONMENT_YML, installed, LINUX_311)
    # reported: torch 2.0.0 against conda's pytorch 2.1.2; not reported: tzdata 2024.1 (python-tzdata matches,
    # conda's own tzdata 2024a is not PyPI's), opencv 4.9.0.80 (conda's =4.9.0 reads as a prefix)
    assert found == {"torch": "lock pins torch 2.1.2; the job ran 2.0.0"}
    assert _names("conda-environment", ENVIRONMENT_YML, {"torch": "2.1.2+cu121"}, LINUX_311) == {}


def test_conda_lock_platforms_and_managers() -> None:
    parsed = parse_lockfile("conda-lock", CONDA_LOCK)
    assert parsed.pins["torch"] == "2.1.0 || 2.1.2" and parsed.pins["requests"] == "2.31.0"
    assert "conda:tzdata" in parsed.pins and parsed.pins["tzdata"] == "2024.1"
    # on linux-64 the linux pin applies: torch 2.1.0 (the osx-arm64 pin) is a disagreement there, not on a Mac
    assert _names("conda-lock", CONDA_LOCK, {"torch": "2.1.0"}, LINUX_311) == {
        "torch": "lock pins torch 2.1.2; the job ran 2.1.0"
    }
    assert _names("conda-lock", CONDA_LOCK, {"torch": "2.1.0"}, MAC_311) == {}
    assert _names("conda-lock", CONDA_LOCK, {"tzdata": "2024.1", "requests": "2.31.0"}, LINUX_311) == {}
    assert _names("conda-lock", CONDA_LOCK, {"tzdata": "2023.4"}, LINUX_311) == {
        "tzdata": "lock pins tzdata 2024.1; the job ran 2023.4"
    }
