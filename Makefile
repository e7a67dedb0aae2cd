# The two commands a newcomer needs: `make run` (the whole system, embedded) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint format bench contracts clean lock

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(INSTALLED)

install: $(INSTALLED) ## Create .venv with the locked dependencies

run: $(INSTALLED) ## Run all four services with embedded PostgreSQL and Kafka broker
	$(BIN)/casework dev

test: $(INSTALLED) ## Run the whole test suite against real PostgreSQL and broker
	$(BIN)/pytest

lint: $(INSTALLED) ## ruff, mypy and the event-contract check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services bench tests
	$(BIN)/casework contracts --check

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(INSTALLED) ## Throughput and latency figures, with a raw-asyncpg baseline
	$(BIN)/python -m bench

contracts: $(INSTALLED) ## Regenerate the event JSON Schemas and docs/asyncapi.yaml
	$(BIN)/casework contracts

clean: ## Remove local data (embedded PostgreSQL data, logs)
	rm -rf .casework

lock: ## Re-pin requirements.lock from a fresh resolve of pyproject.toml
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[dev]"
	.lock-venv/bin/python -m pip freeze --exclude casework > requirements.lock
	rm -rf .lock-venv
