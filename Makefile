# The two commands a new user needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test mutation lint docs services services-down chaos bench bench-transport bench-reliable bench-shop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[shop]"
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[all,test]"
	touch $@ $(RUN_STAMP)

## run: the reference shop on the embedded SQLite broker and SQLite databases (no server needed)
run: $(RUN_STAMP)
	$(BIN)/shop demo --fresh

## test: install the test dependencies and run the whole suite: in parallel (pytest-xdist; tests mostly wait on
## servers, so more workers than cores pay off), in random order (pytest-randomly prints the seed: replay it with
## --randomly-seed=N, or turn it off with -p no:randomly), with branch coverage of the library (the TOTAL line)
TEST_WORKERS ?= 4
test: $(TEST_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --cov=tidings --cov-branch --cov-report=term:skip-covered

## mutation: mutmut over the guarantee modules with their fast tests (on demand, not in CI); docs/mutation.md
mutation: $(TEST_STAMP)
	$(BIN)/pip install --quiet -e ".[all,test,mutation]"
	$(BIN)/python scripts/mutation.py --report docs/mutation.md

## lint: ruff, mypy --strict and the import contracts (import-linter, [tool.importlinter] in pyproject.toml)
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## docs: the documentation site (MkDocs Material + mkdocstrings), strict: a broken link or reference fails
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[all,test,docs]"
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## services: install and start PostgreSQL, RabbitMQ and Kafka on 127.0.0.1 (idempotent)
services:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

## chaos: the shop under load while services are SIGKILLed, the broker restarted and connections cut and
## slowed; then the strict `shop check` (docs/shop.md, "Chaos run"). Needs PostgreSQL on 127.0.0.1:5432 and
## RabbitMQ installed (scripts/services.sh up postgres rabbitmq): it runs a private node of its own on 5673.
## CHAOS_ARGS="--seed N" replays a fault plan. Report: data/chaos/report.json
chaos: $(TEST_STAMP)
	$(BIN)/python -m services.chaos --out data/chaos/report.json $(CHAOS_ARGS)

## bench: every benchmark; figures land in bench/results/*.json
bench: bench-transport bench-reliable bench-shop

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml $(TEST_STAMP)
	$(BIN)/pip install --quiet -e ".[all,test,bench]"
	touch $@

## bench-transport: every broker against its raw client (starts the servers first)
bench-transport: $(BENCH_STAMP) services
	$(BIN)/python bench/transport.py --broker sqlite --out bench/results/transport.json
	$(BIN)/python bench/transport.py --broker rabbitmq --rounds 5 --out bench/results/transport.json
	$(BIN)/python bench/transport.py --broker kafka --rounds 5 --events 50000 --out bench/results/transport.json
	$(BIN)/python bench/task_per_delivery.py

bench-reliable: $(TEST_STAMP) services
	$(BIN)/python bench/reliable_path.py --out bench/results/reliable_path.json

bench-shop: $(TEST_STAMP) services
	$(BIN)/python bench/shop.py --out bench/results/shop.json

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
