# etatcivil — make targets are the contract (INTERFACE.md).
# Two commands for a newcomer: `make run` and `make test`.

SHELL := /bin/bash
GO ?= go
# The Go toolchain, pinned: go1.26.11 fixes the standard library's
# vulnerabilities govulncheck finds in 1.26.8 (make vulncheck); the go
# command fetches it from the module proxy once.
export GOTOOLCHAIN := go1.26.11
STACK := scripts/stack.sh

.PHONY: all build run test fuzz vulncheck up down demo bench test-faults lint tools cog-snapshot sample clean

all: build

build:
	$(GO) build -o bin/ ./cmd/etatcivil ./cmd/registry-sim ./cmd/etatcivil-bench

tools:
	$(STACK) tools

run: build
	$(STACK) run

up: build
	$(STACK) up

down:
	$(STACK) down

demo: build
	$(STACK) demo

# Full suite against real PostgreSQL and a real S3 gateway, with -race.
test: build
	$(GO) vet ./...
	$(STACK) test

# Every fuzz target, FUZZTIME each (10 s by default), against a test
# stack; CI runs it after make test. The seed corpora run in make test.
fuzz: build
	$(STACK) fuzz

# govulncheck against an offline vulnerability database built from the
# golang.org/x/vulndb module the proxy serves (no access to vuln.go.dev).
vulncheck:
	$(STACK) vulncheck

# Benchmarks beside the standalone tools doing the same work (qpdf, a raw
# S3 upload); ratios are printed as extra metrics. See docs/benchmarks.md.
bench: build
	$(STACK) bench

# The fault suite (kill -9 and SIGTERM of a worker, PostgreSQL restarted,
# PostgreSQL failed over to its standby, S3 gateway down, staging refusing
# writes, three workers): one line per fault, non-zero if anything was duplicated
# or lost. FAULTS_ACTS acts per fault (1,000; make test runs it with 200).
test-faults: build
	$(STACK) faults

lint:
	$(GO) vet ./...

# Regenerates testdata/sample/ (deterministic).
sample: build
	rm -rf testdata/sample && bin/etatcivil sample generate --bad testdata/sample

# --- COG snapshot (internal/cog/data/cog.csv.gz) -------------------------
COG_PKG          := @etalab/decoupage-administratif
COG_VERSION      ?= 6.0.0
COG_DATE         ?= 2026-01-01
COG_HIST_VERSION ?= 0.3.0
COG_DIR          ?= .local/cog

cog-snapshot:
	rm -rf $(COG_DIR) && mkdir -p $(COG_DIR)/current $(COG_DIR)/history
	cd $(COG_DIR) && npm pack --silent $(COG_PKG)@$(COG_VERSION) $(COG_PKG)@$(COG_HIST_VERSION) >/dev/null
	tar -xzf $(COG_DIR)/etalab-decoupage-administratif-$(COG_VERSION).tgz -C $(COG_DIR)/current
	tar -xzf $(COG_DIR)/etalab-decoupage-administratif-$(COG_HIST_VERSION).tgz -C $(COG_DIR)/history
	test -s internal/cog/data/cog.csv.gz || : > internal/cog/data/cog.csv.gz
	$(GO) run ./tools/cogsnap -date $(COG_DATE) \
	  -history $(COG_DIR)/history/package/data/communes.json \
	  $(COG_DIR)/current/package/data/communes.json
	$(GO) test ./internal/cog/

clean:
	rm -rf bin .local
