# chipwatch: `make demo` and `make test` do all set-up on a machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-data

.PHONY: install demo serve-demo test test-fast lint bench bench-poll bench-classify bench-stories bench-sources bench-cli bench-scale browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the whole watch once on loopback sample feeds: poll, classify, digest into a Maildir.
demo: $(STAMP)
	$(BIN)/chipwatch --data-dir $(DEMO_DIR) demo

## The review site on the demo's data (after `make demo`): http://127.0.0.1:8080/, demo / demo-password.
## An empty CHIPWATCH_DATABASE_URL: the demo's SQLite file even where database_url is set.
serve-demo: $(STAMP)
	CHIPWATCH_DATABASE_URL= CHIPWATCH_DIGEST_LOOKBACK_DAYS=3650 $(BIN)/chipwatch --data-dir $(DEMO_DIR) serve

## Install what the tests need (browser included, where the machine allows) and run them,
## one process per core (TEST_WORKERS=auto; a number, or 0 for a single process), each test
## file whole in one process (its module fixtures, a review site say, are made once).
TEST_WORKERS ?= auto
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

browser:
	@bash scripts/ensure-chromium.sh || echo "chromium unavailable: browser checks will skip"

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy src

bench: bench-poll bench-classify bench-stories bench-sources bench-cli

## `make bench-poll DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres`: the same
## cycles on PostgreSQL (in a scratch database made on that server and dropped after).
bench-poll: $(STAMP)
	$(BIN)/python scripts/bench_poll.py $(if $(DATABASE_URL),--database-url $(DATABASE_URL))

## One poll cycle of 5,000 loopback feeds (200 ms each) with 1, 2 and 4 workers on a scratch
## PostgreSQL database (`make bench-scale FEEDS=500` for a short run; DATABASE_URL as above).
bench-scale: $(STAMP)
	$(BIN)/python scripts/bench_scale.py $(if $(FEEDS),--feeds $(FEEDS)) $(if $(DATABASE_URL),--database-url $(DATABASE_URL))

bench-classify: $(STAMP)
	$(BIN)/python scripts/bench_classify.py

bench-stories: $(STAMP)
	$(BIN)/python scripts/bench_stories.py

bench-sources: $(STAMP)
	$(BIN)/python scripts/bench_sources.py

## Start-up time of topics list, corpus list, feeds list (no model imported).
bench-cli: $(STAMP)
	$(BIN)/python scripts/bench_cli.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
