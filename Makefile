# Local development on a machine with PostgreSQL on 127.0.0.1:5432 (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
SEED_USERS ?= 1000

.PHONY: run test venv db migrate status verify seed seed-large partitions health lint format clean bench

## run: install, create + migrate + seed the database, start the service (Procfile)
run: db
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## bench: every benchmark on scratch resources; writes bench/RESULTS.md (needs wrk)
bench: venv
	command -v wrk >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python -m bench

## test: the whole test suite against the real PostgreSQL
test: venv
	$(BIN)/pytest

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

## db: create the database if missing, apply migrations, seed when empty
db: venv
	$(FLASK) db create
	$(FLASK) db upgrade
	$(FLASK) db seed --users $(SEED_USERS)

migrate: venv
	$(FLASK) db upgrade

status: venv
	$(FLASK) db status

verify: venv
	$(FLASK) db verify

seed: venv
	$(FLASK) db seed --users $(SEED_USERS)

## seed-large: wipe users and messages, load 1,000,000 users
seed-large: venv
	$(FLASK) db seed --users 1000000 --reset

partitions: venv
	$(FLASK) db partitions

health: venv
	$(FLASK) db health

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
