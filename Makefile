# envsnap — developer entry points. `make test` and `make demo` work from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.envsnap-installed
DEMO_VENV := .cache/demo-venv
OUT    := out

.PHONY: test test-fast lint demo bench clean docker

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu,ray,spark]'
	# An editable install leaves envsnap/ uncompiled; with PYTHONDONTWRITEBYTECODE set (as on these
	# machines) every start would recompile it. A regular wheel install compiles at install time.
	$(BIN)/python -m compileall -q envsnap
	touch $(STAMP)

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
	$(BIN)/ruff check envsnap tests bench
	$(BIN)/ruff format --check envsnap
	$(BIN)/mypy

DEMO_STAMP := $(DEMO_VENV)/.installed
$(DEMO_STAMP): fixtures/example/requirements.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet -r fixtures/example/requirements.txt
	touch $(DEMO_STAMP)

## demo: "a small change broke my pipeline" on the churn example: good and bad runs, diff (terminal + HTML),
## replay of the bad one (Docker when scripts/docker-setup.sh gets an engine, else the venv engine); see scripts/demo.sh
demo: $(STAMP) $(DEMO_STAMP)
	VENV=$(VENV) OUT=$(OUT) scripts/demo.sh

## bench: every benchmark area side by side with its peers (bench/run_all.py); writes bench/RESULTS.md
bench: $(STAMP) $(DEMO_STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .cache $(OUT) .pytest_cache .mypy_cache .ruff_cache
