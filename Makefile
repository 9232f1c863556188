# Both README commands bootstrap .venv themselves on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.flobs-installed
OUT    ?= out/example
PYTEST_ARGS ?=

.PHONY: example test lint typecheck unit test-built-package bench docs clean tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## The main job: generate the example fleet's stack and validate it.
example: $(STAMP)
	$(BIN)/flobs generate -i examples/inventory.yaml -o $(OUT)
	$(BIN)/flobs validate $(OUT) -i examples/inventory.yaml

## The Go-built programs the tests run (Prometheus 3, otelcol, jaeger, victoria-logs),
## from the pinned modules under tools/, cached outside the clone (docs/testing.md).
tools:
	bash tools/build.sh

## The one test command: lint, types, then every test (real tools where installed).
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check flobs tests benchmarks
	$(BIN)/ruff format --check flobs tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

## Install the built wheel into a fresh venv and generate from another directory,
## proving templates and schemas ship in the wheel.
test-built-package: $(STAMP)
	rm -rf build/dist build/wheel-venv
	$(BIN)/python -m build --wheel --outdir build/dist . > /dev/null
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/python -m pip install --quiet build/dist/*.whl
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/flobs generate \
	    -i $(CURDIR)/examples/inventory.yaml -o $(CURDIR)/build/wheel-out
	# An installed flobs has no checkout: point it at what `make tools` built (if anything).
	cd /tmp && FLOBS_TOOLS_PATH=$(CURDIR)/.tools/bin \
	    $(CURDIR)/build/wheel-venv/bin/flobs validate $(CURDIR)/build/wheel-out \
	    -i $(CURDIR)/examples/inventory.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py

docs: $(STAMP)
	$(BIN)/python -m flobs.docgen README.md

clean:
	rm -rf $(VENV) build out .pytest_cache .mypy_cache .ruff_cache
