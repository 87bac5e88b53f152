# The two commands a newcomer needs:  make demo   and   make test
# Each creates .venv (if missing or stale) and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint format proto proto-check bench clean setup loadgen native redis java kernel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) kernel

## The compiled scoring kernel (the default "compiled" engine): g++ and pybind11 only,
## no root; setup.py's build (the one pip install and pip wheel run) in place;
## recompiles only when its source is newer; without g++ a notice, and serving
## uses the numpy engine.
kernel: $(STAMP)
	bash sasrec/engines/kernel/build.sh $(BIN)/python

## Train on the embedded synthetic data, serve it over gRPC, query it, stop.
demo: $(STAMP) kernel
	$(BIN)/sasrec demo

## The test suite (slow end-to-end runs excluded; `make test PYTEST_ARGS="-m slow"` runs them).
## Builds the native front end and installs redis-server first, and requires each
## where it could be had (both need root for their Debian packages; without root
## the tests that need them skip with a notice).
test: $(STAMP) kernel native redis java
	SASREC_REQUIRE_KERNEL=$$(command -v g++ >/dev/null && echo 1 || echo 0) \
	SASREC_REQUIRE_NATIVE=$$(ls serving/sasrec/serving/_native_frontend*.so >/dev/null 2>&1 \
	  && echo 1 || echo 0) \
	SASREC_REQUIRE_REDIS=$$(command -v redis-server >/dev/null && echo 1 || echo 0) \
	  $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Regenerate the gRPC/protobuf code from protos/ (the .proto is the contract).
proto: $(STAMP)
	$(BIN)/python -m sasrec.serving.codegen

## Fail if the checked-in generated code differs from what protos/ produces.
proto-check: $(STAMP)
	$(BIN)/python -m sasrec.serving.codegen --check

## The serving benchmark (docs/benchmarks.md has every benchmark's command).
bench: $(STAMP) loadgen
	$(BIN)/python bench/bench_serving.py --workers 2

## Native (C++) gRPC front end: sasrec serve --frontend native (serving/native/).
native: $(STAMP)
	bash serving/native/build.sh $(BIN)/python

## Native (C++) closed-loop gRPC load generator: bench/loadgen/build/loadgen.
loadgen:
	bash bench/loadgen/build.sh

## A Redis server for the event-store tests (the tests start their own, durable, on
## loopback ports): Debian's redis-server package via apt-get when missing.
redis:
	bash .ci/install_redis.sh

## A Java runtime for the Spark engine (sasrec data prepare --engine spark): Debian's
## default-jdk-headless via apt-get when java is missing (root only; else the Spark tests skip).
java:
	bash .ci/java.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
