# envsnap — developer entry points. `make test` and `make demo` work from a fresh clone.
#
# Our own toolchain installs from hashed locks (requirements/*.txt, pip --require-hashes), never from
# whatever the index holds today: a release elsewhere cannot turn CI red. `make lock` regenerates them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
CORE_STAMP := $(VENV)/.envsnap-core
STAMP  := $(VENV)/.envsnap-dev
DEMO_VENV := .cache/demo-venv
OUT    := out
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock"

.PHONY: test test-fast lint demo bench clean docker lock dist hook install-core install-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# scripts/install_lock.py: pip, setuptools and wheel first (hash-checked), then the lock with
# --require-hashes and no build isolation, then envsnap itself --no-deps; a hash mismatch is one line.
define install_lock
	$(PYTHON) scripts/install_lock.py $(BIN)/python $(1)
	# An editable install leaves envsnap/ uncompiled; with PYTHONDONTWRITEBYTECODE set (as on these
	# machines) every start would recompile it. A regular wheel install compiles at install time.
	$(BIN)/python -m compileall -q envsnap
endef

## install-core: the package and its run-time dependencies only (what `make demo` needs)
$(CORE_STAMP): $(VENV)/bin/python requirements/bootstrap.txt requirements/core.txt pyproject.toml
	$(call install_lock,requirements/core.txt)
	touch $(CORE_STAMP)

## install-dev: everything test, lint and bench need (dev tools, GPU, Ray and Spark extras)
$(STAMP): $(VENV)/bin/python requirements/bootstrap.txt requirements/dev.txt pyproject.toml
	$(call install_lock,requirements/dev.txt)
	touch $(STAMP) $(CORE_STAMP)

install-core: $(CORE_STAMP)
install-dev: $(STAMP)

## lock: regenerate the hashed locks from pyproject.toml after changing a dependency or its range (pins that
## still satisfy are kept); `make lock UPGRADE=--upgrade` takes new releases on purpose. The dev lock is
## resolved first and the others are constrained by it.
UPGRADE ?=
lock: $(STAMP)
	$(BIN)/uv pip compile --native-tls --quiet $(UPGRADE) pyproject.toml --all-extras $(LOCK_FLAGS) -o requirements/dev.txt
	$(BIN)/uv pip compile --native-tls --quiet pyproject.toml -c requirements/dev.txt $(LOCK_FLAGS) -o requirements/core.txt
	$(BIN)/uv pip compile --native-tls --quiet requirements/bootstrap.in -c requirements/dev.txt $(LOCK_FLAGS) -o requirements/bootstrap.txt
	$(BIN)/uv pip compile --native-tls --quiet $(UPGRADE) fixtures/example/requirements.txt $(LOCK_FLAGS) -o requirements/demo-job.txt

## dist: a wheel and an sdist of envsnap-ml in dist/ (install one with `pip install dist/envsnap_ml-*.whl`)
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --sdist --wheel --outdir dist .
	rm -rf build

## hook: the envsnap-hook wheel in dist/ (stdlib only, no dependencies: what goes into a job's own venv)
hook: $(STAMP)
	$(BIN)/python -m build --no-isolation --wheel --outdir dist hook
	rm -rf hook/build hook/src/*.egg-info

## docker: a real engine, a local registry on 127.0.0.1:5000 and a base image pinned by digest (cached)
docker:
	scripts/docker-setup.sh

## test: the whole suite (real virtualenvs, real pip installs, real files, a real Docker engine)
# As root (CI, these machines) the engine and base image are required: docker tests fail, never skip.
# Elsewhere a machine without Docker runs the rest and pytest lists the replay tests as skipped.
test: $(STAMP)
	@if scripts/docker-setup.sh >/dev/null; then \
	  ENVSNAP_BASE_IMAGE=$$(cat .cache/docker/base-image) ENVSNAP_REQUIRE_DOCKER=1 $(BIN)/python -m pytest -q; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "make test: scripts/docker-setup.sh failed; the replay tests need it" >&2; exit 3; \
	else \
	  echo "make test: no Docker engine here (not root): replay tests will be skipped" >&2; \
	  $(BIN)/python -m pytest -q; \
	fi

## test-fast: unit tests only
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

## lint: ruff and mypy (strict on envsnap/)
lint: $(STAMP)
	$(BIN)/ruff check envsnap tests bench hook/src
	$(BIN)/ruff format --check envsnap hook/src
	$(BIN)/mypy
	$(BIN)/mypy --strict hook/src

DEMO_STAMP := $(DEMO_VENV)/.installed
# The example job's own venv: fixtures/example/requirements.txt, with hashes from requirements/demo-job.txt
$(DEMO_STAMP): requirements/demo-job.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/demo-job.txt
	touch $(DEMO_STAMP)

## demo: "a small change broke my pipeline" on the churn example: good and bad runs, diff (terminal + HTML),
## replay of the bad one (Docker when scripts/docker-setup.sh gets an engine, else the venv engine); see scripts/demo.sh
demo: $(CORE_STAMP) $(DEMO_STAMP)
	VENV=$(VENV) OUT=$(OUT) scripts/demo.sh

## bench: every benchmark area side by side with its peers (bench/run_all.py); writes bench/RESULTS.md
bench: $(STAMP) $(DEMO_STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .cache $(OUT) dist build .pytest_cache .mypy_cache .ruff_cache
