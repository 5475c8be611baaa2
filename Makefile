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

.PHONY: install browser run test ui dashboards screenshots sample-data lock clean bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium and a CJK font: the report's chart PNGs, its browser test and the README screenshots
# need them (`make run` does not: without a browser the report skips its PNGs and says so). Installed
# from Debian when absent; CI runs as root on a fresh clone, elsewhere sudo is used if there is one.
BROWSER_PACKAGES := chromium fonts-noto-cjk

browser:
	@if command -v chromium >/dev/null 2>&1 && [ "$$(dpkg-query -W -f='$${db:Status-Abbrev}\n' $(BROWSER_PACKAGES) 2>/dev/null | grep -c '^ii')" = 2 ]; then \
		exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "make browser: need root or sudo to apt-get install $(BROWSER_PACKAGES)" >&2; exit 1; fi; \
	echo "make browser: installing $(BROWSER_PACKAGES) from Debian"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES)

run: install
	$(BIN)/dei materialize --years all --job all

test: install browser
	$(BIN)/python -m pytest

ui: install
	$(BIN)/python -c 'from dei_pipeline.config import prepare_dagster_home; prepare_dagster_home()'
	$(BIN)/dagster dev -h $(UI_HOST) -p $(UI_PORT) -w workspace.yaml

# The dashboards of bi/ (Streamlit) over the serving snapshot, read-only, on loopback; `make run` first.
dashboards: install
	STREAMLIT_BROWSER_GATHER_USAGE_STATS=false $(BIN)/streamlit run bi/dashboard.py --server.headless true \
		--server.address $(UI_HOST) --server.port $(DASHBOARD_PORT) --client.toolbarMode viewer

# Refresh the README pictures (docs/images/): the Dagster UI on loopback over a private copy of the
# sample, and the 2020 report, both shot with headless Chromium.
screenshots: install browser
	$(BIN)/python scripts/screenshots.py

sample-data: install
	$(BIN)/dei sample-data

# Performance at national scale (issue #5; docs/performance.md): generates the synthetic national data
# set into bench/.data/ when absent, runs every bench/bench_*.py with its baselines measured in the same
# run (DuckDB SQL, pandas; one run per edition), prints the figures and writes them to bench-results.json.
bench: install
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
