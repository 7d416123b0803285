# Set-up lives here so that a fresh machine needs nothing but python3, make and apt.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup browser postgres postgres-stop test lint demo ui simulate clean bench

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

# A local PostgreSQL server for Dagster's instance storage (installed with apt-get when
# missing; cluster under $$TMPDIR on a free loopback port; idempotent). Prints its env file.
postgres:
	@bash deploy/local-postgres.sh start

postgres-stop:
	@bash deploy/local-postgres.sh stop

lint: setup
	$(BIN)/ruff check .

# The README's test command: everything CI runs (the Postgres end-to-end test included:
# the server is started first and stopped afterwards).
test: setup browser postgres
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	@rc=0; STX_PIPELINE_PG_ENV="$$(bash deploy/local-postgres.sh env)" \
	  $(BIN)/pytest -n 2 -q $(PYTEST_ARGS) || rc=$$?; \
	  bash deploy/local-postgres.sh stop; exit $$rc

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
