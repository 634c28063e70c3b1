# Each target builds its own virtual environment; nothing relies on what is installed already.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# mitmproxy 11.0.2 (the newest for Python 3.11) pins h11<=0.14.0 and h2<=4.1.0, which carry known
# request-smuggling flaws: CVE-2025-43859 (h11 accepts any two bytes as a chunk's CRLF) and
# GHSA-847f-9342-265h (h2 lets CR/LF through in header values that become HTTP/1 headers). pip
# cannot resolve fixed versions against those pins in one step, so they are installed over them
# with --no-deps (hyperframe is what h2 4.3 needs), and every test run checks they are in place
# (tools/check_fixed_deps.py). docs/security.md says what was checked with them.
FIXED_DEPS := h11==0.16.0 h2==4.3.0 hyperframe==6.1.0

.PHONY: run test test-fast lint typecheck check bench categories clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(FIXED_DEPS)
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
	$(BIN)/python tools/check_fixed_deps.py $(FIXED_DEPS)
	$(BIN)/ruff check addon tests bench
	$(BIN)/mypy
	$(BIN)/aupgate check --policy-dir policies
	$(BIN)/aupgate test tests/conformance --policy-dir policies --min-coverage 100
	$(BIN)/pytest

## The inner loop (under a minute): lint, types and the unit tests, without the tests marked
## e2e, deploy or slow (real proxies, servers, browsers; seconds-long property tests).
test-fast: $(STAMP)
	$(BIN)/python tools/check_fixed_deps.py $(FIXED_DEPS)
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
