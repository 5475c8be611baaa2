# Set-up and entry points. Every target creates .venv and installs the pinned set on first use,
# so a fresh clone needs nothing but python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
DASHBOARD_PORT ?= 8501

.PHONY: install fonts browser run lint test test-fast ui dashboards screenshots sample-data lock clean bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages, installed when absent: CI runs as root on a fresh clone, elsewhere sudo is used if
# there is one. $(call APT_INSTALL,packages)
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "make $@: need root or sudo to apt-get install $(1)" >&2; exit 1; fi; \
	echo "make $@: installing $(1) from Debian"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(1)

# The report's CJK font: vl-convert lays the charts' Chinese text out with it into the SVGs and PNGs.
# A TrueType font: vl-convert draws a chart three to four times as fast with it as with Noto Sans CJK (CFF
# outlines; docs/performance.md). fontconfig's fc-list tells whether it is there.
CHART_FONT := WenQuanYi Micro Hei
FONT_PACKAGES := fonts-wqy-microhei fontconfig

fonts:
	@if command -v fc-list >/dev/null 2>&1 && [ -n "$$(fc-list '$(CHART_FONT)' family)" ]; then exit 0; fi; \
	$(call APT_INSTALL,$(FONT_PACKAGES))

# Headless Chromium, for what is looked at in a browser: the report's browser test and the README
# screenshots (Playwright drives it; `make run` needs no browser).
browser: fonts
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	$(call APT_INSTALL,chromium)

run: install fonts
	$(BIN)/dei materialize --years all

# The linter, the formatter's check and the type checker over the whole tree (settings in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install browser
	$(BIN)/python -m pytest

# The unit tests alone, in under a minute: no sample warehouse, no Dagster run, no other process
# (markers in pyproject.toml; `make test` runs every layer).
test-fast: install fonts
	$(BIN)/python -m pytest -m "not sample and not pipeline and not e2e"

# DEI_DAGSTER_WEBSERVER tells the raw-files sensor where the webserver is, so that it reloads the
# definitions by itself when a new edition folder appears.
ui: install fonts
	$(BIN)/python -c 'from dei_pipeline.config import prepare_dagster_home; prepare_dagster_home()'
	DEI_DAGSTER_WEBSERVER=$(UI_HOST):$(UI_PORT) $(BIN)/dagster dev -h $(UI_HOST) -p $(UI_PORT) -w workspace.yaml

# The dashboards of bi/ (Streamlit) over the serving snapshot, read-only, on loopback; `make run` first.
dashboards: install
	STREAMLIT_BROWSER_GATHER_USAGE_STATS=false $(BIN)/streamlit run bi/dashboard.py --server.headless true \
		--server.address $(UI_HOST) --server.port $(DASHBOARD_PORT) --client.toolbarMode viewer

# Refresh the README pictures (docs/images/): the Dagster UI on loopback over a private copy of the
# sample, and the 2020 report, both shot with headless Chromium driven by Playwright.
screenshots: install browser
	$(BIN)/python scripts/screenshots.py

sample-data: install
	$(BIN)/dei sample-data

# Performance at national scale (docs/performance.md): generates the synthetic national data
# set into bench/.data/ when absent, runs every bench/bench_*.py with its baselines measured in the same
# run (DuckDB SQL, pandas; one run per edition), prints the figures and writes them to bench-results.json.
bench: install fonts
	$(BIN)/python -c "import pandas" 2>/dev/null || $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/run.py --json bench-results.json

# Re-pin: resolve the newest allowed versions in a scratch venv and write constraints.txt.
lock:
	rm -rf /tmp/dei-lock-venv && $(PYTHON) -m venv /tmp/dei-lock-venv
	/tmp/dei-lock-venv/bin/python -m pip install --quiet --upgrade pip
	/tmp/dei-lock-venv/bin/python -m pip install --quiet -e '.[dev,bench]'  # bench: pandas, the benchmark's baseline, pinned too
	/tmp/dei-lock-venv/bin/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) data/warehouse .dagster_home
