# tether — the targets the README names.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
NODE_DIR := tests/node

.PHONY: run test install system-deps lint typecheck docs pytest conformance conformance-quick bench bench-smoke node-deps fuzz fuzz-smoke clean

$(VENV)/.installed: pyproject.toml setup.py src/tether/_speedups.c
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -U pip
	$(VPY) -m pip install -q -e '.[dev,speedups,redis]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.fuzz-installed: $(VENV)/.installed
	$(VPY) -m pip install -q -e '.[fuzz]'
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(VPY) -m pip install -q -e '.[docs]'
	touch $@

node-deps: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --silent
	touch $@

# What the tests drive besides npm packages: Chromium and nginx (Debian packages; quick
# when they are there). The demo (make run) needs none of it.
system-deps:
	bash $(NODE_DIR)/install-system-packages.sh

run: install node-deps
	$(VPY) -m tether.cli demo --host 127.0.0.1 --port 8765

lint: install
	$(VENV)/bin/ruff check src tests examples compliance bench fuzz
	$(VENV)/bin/ruff format --check src tests examples compliance bench fuzz

typecheck: install
	$(VENV)/bin/mypy

# The documentation site (mkdocs.yml) into build/site: every warning fails the build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

pytest: install node-deps system-deps
	$(VPY) -m pytest -q -p no:cacheprovider
	# the pure-Python twins of the compiled accelerator, on the protocol core
	TETHER_PURE_PYTHON=1 $(VPY) -m pytest -q -p no:cacheprovider tests/protocol

test: install node-deps system-deps lint typecheck docs pytest fuzz-smoke conformance-quick bench-smoke

conformance: install
	bash compliance/run.sh all

conformance-quick: install
	bash compliance/run.sh quick

# Coverage-guided fuzzing of every decoder (fuzz/README.md): FUZZ_TIME seconds per target.
FUZZ_TIME ?= 60
# fuzz-smoke (in `make test`): replay the corpus, then a fixed-seed run of each target
# (FUZZ_SMOKE_RUNS inputs, at most FUZZ_SMOKE_TIME seconds).
FUZZ_SMOKE_TIME ?= 20
FUZZ_SMOKE_RUNS ?= 20000

fuzz: $(VENV)/.fuzz-installed
	bash fuzz/run.sh $(FUZZ_TIME)

fuzz-smoke: $(VENV)/.fuzz-installed
	FUZZ_FRESH=1 FUZZ_ARGS="-seed=1 -runs=$(FUZZ_SMOKE_RUNS)" bash fuzz/run.sh $(FUZZ_SMOKE_TIME)

bench: install
	bash bench/run.sh

bench-smoke: install
	bash bench/run.sh --smoke

clean:
	rm -rf $(VENV) .venv-autobahn $(NODE_DIR)/node_modules compliance/reports build
