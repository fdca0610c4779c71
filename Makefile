# The two commands: `make run` (the whole application) and `make test` (every test).
# Both set up .venv/ themselves on a fresh machine.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build lies on this machine's disk; a GPU machine may set TORCH_SPEC to its own.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test lint format install install-test browser ldap clean audit

run: $(VENV)/.installed
	@bash scripts/run.sh

# The database tests run twice: on SQLite (the default) and on PostgreSQL.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
# In-process tests (the engine on the tiny model, the web app on its test database) are
# shared out over TEST_WORKERS processes (pytest-xdist; in collection order, so each process runs
# its transactional tests, which empty the database, after the others); the tests
# that start real Daphnes, workers, Redis and Chromium run one at a time after them.
TEST_WORKERS ?= 2
REAL_PROCESS_TESTS := tests/integration tests/browser tests/scripts

test: $(VENV)/.installed-test browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) $(addprefix --ignore=,$(REAL_PROCESS_TESTS))
	$(PY) -m pytest $(REAL_PROCESS_TESTS)
	@if $(PY) -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$(TEST_POSTGRES_URL)" 2>/dev/null; then \
	  echo "== the database tests again, on PostgreSQL ($(TEST_POSTGRES_URL))"; \
	  DATABASE_URL="$(TEST_POSTGRES_URL)" $(PY) -m pytest -n $(TEST_WORKERS) tests/webapp -p no:cacheprovider; \
	elif [ -n "$$CI" ]; then echo "PostgreSQL does not answer at $(TEST_POSTGRES_URL)" >&2; exit 1; \
	else echo "== PostgreSQL does not answer at $(TEST_POSTGRES_URL): its pass is skipped (CI requires it)"; fi

# Known vulnerabilities in the installed dependencies (docs/operations.md). It needs the
# network (PyPI's JSON API or OSV), so it is its own target, not part of `make test`.
audit: $(VENV)/.installed
	$(PY) -m pip install --quiet 'pip-audit>=2.10,<3'
	$(VENV)/bin/pip-audit --local --strict --progress-spinner off

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-ldap.txt | ldap
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

# Debian's slapd (the LDAP tests start one) and the OpenLDAP headers python-ldap builds against.
ldap:
	@{ [ -x /usr/sbin/slapd ] && [ -f /usr/include/ldap.h ] && [ -f /usr/include/sasl/sasl.h ]; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd libldap2-dev libsasl2-dev; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd libldap2-dev libsasl2-dev; fi; }

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles .run
