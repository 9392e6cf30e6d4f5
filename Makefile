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

.PHONY: setup dataset photos browser postgres qemu run test lint format clean lock

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

# Real RGB photographs for data.crop=random_patches (docs/own-images.md): 35 that Debian's wallpaper
# packages ship (the packages also hold drawings, which are left out) and 2 from scikit-learn,
# copied into data/raw/photos/ (ignored by git). Idempotent: a photo already there is not copied again.
PHOTOS      := data/raw/photos
PHOTO_DEBS  := mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers
PHOTO_FILES := \
	$(foreach n,Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood \
		YellowFlower,/usr/share/backgrounds/mate/nature/$(n).jpg) \
	$(foreach n,Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace \
		Picture_1A_by_freespace Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi free_by_Peter_Nerlich \
		friends_by_Aitzol_Berasategi greentock_by_Peter_Nerlich life_by_Aitzol_Berasategi \
		picosdeeuropa_by_Aitzol_Berasategi seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi \
		Kleiber_by_Lukas_Baubkus,/usr/share/backgrounds/$(n).jpg) \
	$(foreach n,BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf OneStandsOut Path \
		summer_1am,/usr/share/wallpapers/$(n)/contents/images/2560x1600.jpg)

photos:
	@missing=$$(for f in $(PHOTO_FILES); do [ -f $$f ] || echo $$f; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(PHOTO_DEBS)) \
		|| echo "note: could not apt-get install $(PHOTO_DEBS); copying the photos that are there"; \
	fi
	@mkdir -p $(PHOTOS)
	@sklearn=$$(python3 -c 'import pathlib, sklearn.datasets as d; print(pathlib.Path(d.__file__).parent / "images")' \
		2>/dev/null) || echo "note: no scikit-learn on PATH (make setup installs it); its 2 photos are left out"; \
	for f in $(PHOTO_FILES) $$sklearn/china.jpg $$sklearn/flower.jpg; do \
		case $$f in */contents/images/*) name=$$(echo $$f | cut -d/ -f5).jpg ;; *) name=$$(basename $$f) ;; esac; \
		[ -f $$f ] && { cmp -s $$f $(PHOTOS)/$$name || cp $$f $(PHOTOS)/$$name; }; \
	done; \
	echo "$(PHOTOS): $$(ls $(PHOTOS) | wc -l) photos"

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

# The CPU-pinning test reruns a tiny pipeline on an emulated CPU of the other vendor (Intel <-> AMD).
qemu:
	@if ! command -v qemu-x86_64 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq qemu-user) \
		|| echo "note: could not apt-get install qemu-user; the other-vendor pinning test will be skipped"; \
	fi

# The last line says what ran, what was cached, fid_domain and the registry decision.
run: setup
	@start=$$(date +%s); dvc repro && ganops summary --since $$start

test: setup browser postgres qemu
	ruff check .
	ruff format --check .
	# Two workers, a test file each: half of the suite waits on process start-up, servers and DVC,
	# so 2 cores run it in 1,014 s instead of 1,368 s (measured 2026-12-06).
	# --durations: the slowest tests in every CI log, to trim against the 20-minute budget.
	pytest -n 2 --dist loadfile --durations=25

format: setup
	ruff check --fix .
	ruff format .

clean:
	rm -rf data/prepared models reports mlflow.db mlruns logs .ganops
