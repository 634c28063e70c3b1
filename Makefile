# Each target builds its own virtual environment; nothing relies on what is installed already.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck check bench categories clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the proxy on 127.0.0.1:8080 with the shipped policies and categories. A client on the
## gateway itself is in no agency's networks, so it is decided as AGENCY (make run AGENCY=mo-dnr).
## The audit log goes to var/audit.jsonl (git-ignored): `aupgate review var/audit.jsonl`. One
## process, so that file is the whole log (several workers write one file each, audit.wN.jsonl).
AGENCY ?= modot
AUDIT_LOG ?= var/audit.jsonl
PORT ?= 8080
run: $(STAMP)
	@mkdir -p $(dir $(AUDIT_LOG))
	@echo "aupgate: audit log $(AUDIT_LOG) (read it with: $(BIN)/aupgate review $(AUDIT_LOG))"
	$(BIN)/aupgate run --listen-host 127.0.0.1 --listen-port $(PORT) --workers 1 \
		--policy-dir policies --default-agency $(AGENCY) --audit-log $(AUDIT_LOG)

## The whole test suite, with lint and type checks first.
test: $(STAMP)
	$(BIN)/ruff check addon tests bench
	$(BIN)/mypy
	$(BIN)/aupgate check --policy-dir policies
	$(BIN)/aupgate test tests/conformance --policy-dir policies --min-coverage 100
	$(BIN)/pytest

## The inner loop (under a minute): lint, types and the unit tests, without the tests marked
## e2e, deploy or slow (real proxies, servers, browsers; seconds-long property tests).
test-fast: $(STAMP)
	$(BIN)/ruff check addon tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not e2e and not deploy and not slow"

lint: $(STAMP)
	$(BIN)/ruff check addon tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/aupgate check --policy-dir policies

bench: $(STAMP)
	$(BIN)/python bench/decisions.py

## Rebuild categories/ from ../shared/data (build time only; never read at run time).
categories: $(STAMP)
	$(BIN)/python tools/build_categories.py --shared ../shared/data --out categories

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
