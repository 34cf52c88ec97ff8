# ChannelHub: every target sets itself up (a fresh machine needs only Python 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
N      ?= 100000

.PHONY: install browser demo demo-once demo-celery test reliability lint bench-ingest bench-backfill bench-latency bench-scale clean-state

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==25.3
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium and its driver for the UI tests (Debian packages; Playwright drives /usr/bin/chromium).
browser:
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium chromium-driver)

demo: install
	$(BIN)/channelhub demo

demo-once: install
	$(BIN)/channelhub demo --once

# The same stack with each Airflow component a process of its own and two Celery workers (Redis on 127.0.0.1:6379).
demo-celery: install
	$(BIN)/python -m channelhub.demo_celery

test: install browser
# Debian's docker-compose validates docker-compose.yml (tests/test_compose.py); no engine is needed.
	test -x /usr/bin/docker-compose || (apt-get update -q && apt-get install -y -q docker-compose)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

RUNS ?= 50
reliability: install
	$(BIN)/python -m reliability.crash --runs $(RUNS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench-ingest: install
	$(BIN)/python bench/ingest.py --orders $(N)

ORDERS ?= 100000 300000 1000000
bench-backfill: install
	$(BIN)/python bench/backfill.py --orders $(ORDERS)

MINUTES ?= 8
bench-latency: install
	$(BIN)/python bench/order_to_stock.py --minutes $(MINUTES)

CHANNELS ?= 1 50 200
SCALE_MINUTES ?= 6
bench-scale: install
	$(BIN)/python bench/scale.py --channels $(CHANNELS) --minutes $(SCALE_MINUTES)

clean-state:
	-$(BIN)/channelhub db stop
	rm -rf .state
