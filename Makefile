# Two entry points: `make run` (the whole pipeline on the embedded default) and `make test`.
# Both run `setup` first, which is idempotent: the venv is rebuilt only when pyproject.toml changes.

VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
DATASET := /usr/share/datasets/fashion-mnist

export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup dataset browser postgres run test lint format clean lock

setup: $(STAMP) dataset .dvc/plots-offline.html

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# Re-resolve the exact versions in a throw-away venv after changing pyproject.toml's dependencies.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' requirements.lock; .venv-lock/bin/pip list --format=freeze --exclude-editable \
		| grep -v -E '^(pip|setuptools|wheel)=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

# `dvc plots show` with Vega inlined (.dvc/config names this template), so the charts render offline.
.dvc/plots-offline.html: $(STAMP)
	$(VENV)/bin/python -m ganops.plots_page $@

# Debian ships Fashion-MNIST as a package; elsewhere the prepare stage falls back to torchvision's downloader.
dataset:
	@if [ ! -d $(DATASET) ] && command -v apt-get >/dev/null 2>&1; then \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "note: could not apt-get install dataset-fashion-mnist; prepare will try torchvision's downloader"; \
	fi

# The demo page's test drives Debian's headless Chromium; Playwright/Selenium browser downloads are not needed.
browser:
	@if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver) \
		|| echo "note: could not apt-get install chromium chromium-driver; the browser test will be skipped"; \
	fi

# The registry's PostgreSQL test starts its own throw-away cluster from Debian's server binaries.
postgres:
	@if [ ! -d /usr/lib/postgresql ] && command -v apt-get >/dev/null 2>&1; then \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql) \
		|| echo "note: could not apt-get install postgresql; the PostgreSQL registry test will be skipped"; \
	fi

# The last line says what ran, what was cached, fid_domain and the registry decision.
run: setup
	@start=$$(date +%s); dvc repro && ganops summary --since $$start

test: setup browser postgres
	ruff check .
	ruff format --check .
	pytest

format: setup
	ruff check --fix .
	ruff format .

clean:
	rm -rf data/prepared models reports mlflow.db mlruns logs .ganops
