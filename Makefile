# Knowledge Graph Lab: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
# The interpreter python3 names (3.11 or 3.12: the range the lock covers).
PYTHON_VERSION ?= $(shell python3 -c "import sys; print('%d.%d' % sys.version_info[:2])")
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2
export UV_PYTHON_DOWNLOADS := never
# Workspace packages, installed editable on top of the locked third-party set.
PACKAGES := shared gateway services/auth services/ingestion services/graph services/document services/vector cli

# install is a real file target, below
.PHONY: help install lock dev stack stack-purge test test-unit test-contract test-integration test-e2e test-deployed lint format \
        servers servers-down servers-status up down images containers-up containers-down bench corpus validate-deploy clean \
        backup restore rebuild dead-letters web screenshots brief

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(BIN)/.installed ## install uv (if missing) and every Python dependency from the lock file

# requirements.lock pins every third-party package with its hashes (`make lock` writes it);
# reinstall only when it or a package's pyproject changes.
$(BIN)/.installed: requirements.lock $(addsuffix /pyproject.toml,$(PACKAGES))
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON_VERSION) $(VENV)
	@$(UV) pip sync --python $(BIN)/python --quiet --require-hashes requirements.lock
	@$(UV) pip install --python $(BIN)/python --quiet --no-deps $(addprefix -e ./,$(PACKAGES))
	@touch $@

lock: ## re-resolve after editing a pyproject.toml, keeping every other pin (FREE="a b" may move); writes requirements.lock
	@python3 deploy/dev/lock.py --uv "$(UV)" $(foreach name,$(FREE),--free $(name))

dev: install ## run the whole system in one process on embedded backends (http://127.0.0.1:8000)
	@$(BIN)/python deploy/dev/run.py

stack: install ## the whole system as separate processes on `make servers` (RabbitMQ, real stores); Ctrl-C stops it
	@eval "$$(bash deploy/local/servers.sh up)" && exec $(BIN)/python deploy/stack/run.py up

stack-purge: install ## drop the data `make stack` keeps (its databases, virtual host and files)
	@eval "$$(bash deploy/local/servers.sh env)" && $(BIN)/python deploy/stack/run.py purge

# loadgroup: the browser tests share one worker, one live system and one Chromium.
test: install ## the whole test suite (real-server tests need `make servers` or Docker)
	@$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-unit: install ## unit tests only (no I/O)
	@$(BIN)/pytest tests/unit

test-contract: install ## contract suites (every adapter of every port)
	@$(BIN)/pytest -n $(PYTEST_WORKERS) tests/contract

test-integration: install ## integration tests against real servers
	@$(BIN)/pytest -n $(PYTEST_WORKERS) tests/integration

test-e2e: install ## end-to-end tests through the gateway
	@$(BIN)/pytest -n $(PYTEST_WORKERS) tests/e2e

test-deployed: install ## the deployed suite: a `make stack` of its own (or KGLAB_DEPLOYED_URL) on `make servers`
	@$(BIN)/pytest -p no:xdist tests/deployed

web: ## rebuild the web app's committed bundle (gateway/kglab_gateway/web) from web/ with npm and esbuild
	@cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

screenshots: install ## run the browser tests, saving each page's screenshot to docs/screenshots/ (the README's)
	@KGLAB_SCREENSHOT_DIR=docs/screenshots $(BIN)/pytest -p no:xdist tests/browser

lint: install ## ruff and mypy (strict on shared/, the gateway and every service)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

format: install ## apply ruff's fixes and formatting
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

servers: ## start real PostgreSQL, Redis, RabbitMQ, Neo4j, SecantusDB and clamd on 127.0.0.1
	@bash deploy/local/servers.sh up

servers-down: ## stop the servers `make servers` started
	@bash deploy/local/servers.sh down

servers-status: ## show which local servers are up
	@bash deploy/local/servers.sh status

up: ## docker compose up: the full stack from official images (needs a Docker engine)
	docker compose up --build --wait

down: ## docker compose down
	docker compose down

images: ## build the six service images with docker or podman, whichever is present (podman: on a Debian base made here)
	@bash deploy/containers/images.sh

# The containers stack: NAME and PORT as `make stack`'s (KGLAB_STACK_NAME, KGLAB_PORT).
containers-up: install ## the images of `make images` as containers on `make servers` (host network, read-only, non-root)
	@eval "$$(bash deploy/local/servers.sh env)" && bash deploy/containers/run.sh up $${KGLAB_STACK_NAME:-containers} $${KGLAB_PORT:-8000}

containers-down: ## stop and remove the containers of `make containers-up` (their data stays)
	@bash deploy/containers/run.sh down $${KGLAB_STACK_NAME:-containers}

# Backups (adr/0021, docs/runbook.md): the KGLAB_*_URL servers (servers.sh env) or, with none
# exported, the embedded data; STACK=NAME backs up `make stack` NAME's own databases.
backup: install ## one dated, encrypted backup set of every store in use; prints its path last
	@$(BIN)/python -m deploy.backup $(if $(STACK),--stack $(STACK)) backup

restore: install ## restore the stores in use from BACKUP=path (stop the services first)
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=.kglab/backups/kglab-..." >&2; exit 2; }
	@$(BIN)/python -m deploy.backup $(if $(STACK),--stack $(STACK)) restore "$(BACKUP)"

rebuild: install ## re-index every stored document (OWNER=user id for one) into search and the graph (RabbitMQ bus)
	@$(BIN)/python -m kglab_document.rebuild $(if $(OWNER),--owner $(OWNER)) $(if $(RESUME),--resume $(RESUME))

dead-letters: install ## list a consumer group's dead letters (GROUP=vector; REPLAY=1 sends them back)
	@test -n "$(GROUP)" || { echo "usage: make dead-letters GROUP=vector [REPLAY=1]" >&2; exit 2; }
	@$(BIN)/python -m kglab_shared.bus.dead_letters $(if $(REPLAY),replay,list) $(GROUP)

validate-deploy: install ## validate docker-compose.yml, the alert rules, dashboards and the Helm chart without an engine
	@bash deploy/validate.sh

corpus: install ## regenerate the test corpus in tests/data/ (add CHECK=1 to verify it instead)
	@$(BIN)/python tests/data/generate.py $(if $(CHECK),--check)

bench: install ## the benchmark suite; prints tables and writes bench/results/
	@BENCH=$(BENCH) $(BIN)/python bench/run.py

brief: install ## regenerate docs/research-brief.md and its pictures from bench/results/ (CHECK=1: fail if stale; pictures need Graphviz)
	@$(BIN)/python -m research.brief $(if $(CHECK),--check,)

clean: ## remove local data and caches (not the servers' data: see servers-down)
	rm -rf .kglab/dev .pytest_cache .ruff_cache .mypy_cache
