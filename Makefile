# Set-up and entry points. Every target creates .venv and installs the pinned set on first use,
# so a fresh clone needs nothing but python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: install run test ui sample-data lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/dei materialize --years all

test: install
	$(BIN)/python -m pytest

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -h $(UI_HOST) -p $(UI_PORT) -w workspace.yaml

sample-data: install
	$(BIN)/dei sample-data

# Re-pin: resolve the newest allowed versions in a scratch venv and write constraints.txt.
lock:
	rm -rf /tmp/dei-lock-venv && $(PYTHON) -m venv /tmp/dei-lock-venv
	/tmp/dei-lock-venv/bin/python -m pip install --quiet --upgrade pip
	/tmp/dei-lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	/tmp/dei-lock-venv/bin/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) data/warehouse .dagster_home
