# Set-up lives here so that a fresh machine needs nothing but python3, make and apt.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup browser test lint demo ui simulate clean bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Headless Chromium for the dashboard's browser tests, from the system package manager.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: setup
	$(BIN)/ruff check .

# The README's test command: everything CI runs.
test: setup browser
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	$(BIN)/pytest -n 2 -q $(PYTEST_ARGS)

# The README's offline main job: simulator + backfill + metrics + dashboard.
demo: setup
	$(BIN)/stx-pipeline demo

# Simulator + dagster dev together, for the UI.
ui: setup
	$(BIN)/stx-pipeline ui

simulate: setup
	$(BIN)/stx-pipeline simulate

bench: setup
	$(BIN)/python benchmarks/bench_backfill.py
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) data/cache data/dagster data/dashboards data/*.json logs
