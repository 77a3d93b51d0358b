# The two commands a new user needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-browser mutation lint docs services services-down chaos security asyncapi-check bench bench-transport bench-reliable bench-shop bench-soak clean

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
## --randomly-seed=N, or turn it off with -p no:randomly), with branch coverage of the library (the TOTAL line).
## The security tests run after, in one process: they share private servers on fixed ports (5690, 5440, 19192-4).
TEST_WORKERS ?= 4
test: $(TEST_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --cov=tidings --cov-branch --cov-report= --ignore=tests/integration/security
	$(BIN)/pytest tests/integration/security --cov=tidings --cov-branch --cov-append --cov-report=term:skip-covered

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

## test-browser: the dashboard in headless Chromium (installs Debian's chromium first; screenshots in tests/artifacts/)
test-browser: $(TEST_STAMP)
	bash scripts/browser.sh
	$(BIN)/pytest tests/browser -q

## asyncapi-check: the official @asyncapi/parser (npm, pinned in tests/asyncapi/package.json) on the shop's
## AsyncAPI document; errors and warnings fail. tests/asyncapi/test_parser.py runs it on a generated one too.
asyncapi-check: $(TEST_STAMP)
	cd tests/asyncapi && npm ci --no-audit --no-fund --loglevel=error
	node tests/asyncapi/validate.mjs docs/asyncapi/shop.json

## services: install and start PostgreSQL, RabbitMQ and Kafka on 127.0.0.1 (idempotent)
services:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

## cluster-ci: three-node RabbitMQ and Kafka clusters on loopback (scripts/cluster.sh), a node SIGKILLed under
## load on each, the conformance suite against both, clusters stopped (the CI step; docs/deployment.md)
## cluster-shop: the shop with two replicas of every service on the RabbitMQ cluster + PostgreSQL, a node and a
## replica of each service killed, then `shop check` (needs `scripts/cluster.sh up rabbitmq`; data/chaos/cluster.json)
.PHONY: cluster-ci cluster-shop cluster-scale
cluster-ci: $(TEST_STAMP)
	bash scripts/ci-cluster.sh

cluster-shop: $(TEST_STAMP)
	$(BIN)/python -m services.chaos.cluster replicas --out data/chaos/cluster.json

cluster-scale: $(TEST_STAMP)
	$(BIN)/python -m services.chaos.cluster scale --out data/chaos/cluster-scale.json

## chaos: the shop under load while services are SIGKILLed, the broker restarted and connections cut and
## slowed; then the strict `shop check` (docs/shop.md, "Chaos run"). Needs PostgreSQL on 127.0.0.1:5432 and
## RabbitMQ installed (scripts/services.sh up postgres rabbitmq): it runs a private node of its own on 5673.
## CHAOS_ARGS="--seed N" replays a fault plan. Report: data/chaos/report.json
chaos: $(TEST_STAMP)
	$(BIN)/python -m services.chaos --out data/chaos/report.json $(CHAOS_ARGS)

## security: the security tests alone (docs/security.md): private RabbitMQ, Kafka and PostgreSQL servers
## with a test-made CA on ports 5690-5691, 19192-19194 and 5440, each stopped when the tests end.
security: $(TEST_STAMP)
	TIDINGS_REQUIRE_SERVICES=1 $(BIN)/pytest tests/unit/security tests/integration/security -q -p no:randomly

## bench: every benchmark; figures land in bench/results/*.json
bench: bench-transport bench-reliable bench-shop bench-soak

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

bench-reliable: $(BENCH_STAMP) services
	$(BIN)/python bench/reliable_path.py --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --event-loop uvloop --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --database postgres --broker rabbitmq --events 5000 --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --broker memory --events 5000 --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --broker memory --handler core --concurrency 64 --events 5000 --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --broker memory --handler driver --concurrency 64 --events 5000 --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --broker memory --handler prepared --concurrency 64 --events 5000 --event-loop uvloop --out bench/results/reliable_path.json
	$(BIN)/python bench/reliable_path.py --database postgres --broker memory --handler prepared --concurrency 64 --events 5000 --event-loop uvloop --out bench/results/reliable_path.json
	$(BIN)/python bench/sqlite_statements.py --out bench/results/sqlite_statements.json
	$(BIN)/python bench/plot.py

bench-shop: $(BENCH_STAMP) services
	$(BIN)/python bench/shop.py --out bench/results/shop.json
	$(BIN)/python bench/plot_shop.py

## bench-soak: the embedded shop at 10 orders/s for 10 minutes (--minutes 3 for a short one)
bench-soak: $(BENCH_STAMP)
	$(BIN)/python bench/soak.py --out bench/results/soak.json --plot bench/results/soak.png

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
