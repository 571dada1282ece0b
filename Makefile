# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# Every process make starts sees them: `make run` serves there, and links mailed outside a request
# (workers, commands) point there too (config/settings.py DEVELOPMENT_BASE_URL).
export HOST PORT

.PHONY: install migrate run test test-sqlite test-postgres lint bench bench-small bench-tenants clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The control database, the cache table, then every tenant database.
migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py tenants migrate --all

# The console (runserver), its mail worker and a job worker side by side, as listed in
# Procfile.dev; honcho prefixes their output and one Ctrl-C stops them all. Mail waits in the
# outbox for the mail worker, as in production; the console shows it at /mail/.
run: migrate
	@echo "Serving the console on http://$(HOST):$(PORT)/ with its mail worker and a job worker beside it (Ctrl-C stops them all)"
	OUTBOX_DELIVERY=worker SERVE_PORT=$(PORT) PATH="$(abspath $(VENV))/bin:$$PATH" \
		exec $(VENV)/bin/honcho --env /dev/null --procfile Procfile.dev start

# The whole suite: SQLite, then PostgreSQL (with Redis) when a server is reachable.
test: install
	./scripts/test.sh

# ruff, the import-layers contract (pyproject: [tool.importlinter]) and mypy with django-stubs.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

test-sqlite: install
	ONLY=sqlite ./scripts/test.sh

test-postgres: install
	ONLY=postgres ./scripts/test.sh

# Ours against the Django admin (and a save() loop), side by side: see README "Performance".
# Default: 1,000,000 users on PostgreSQL (127.0.0.1:5432; BENCH_DATABASE_URL to change).
bench: install
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# The instance at many tenants (README "Scale"): creates TENANTS tenants on PostgreSQL, measures
# at 10 and at TENANTS, drops them. `make bench-tenants TENANTS=1000 BENCH_ARGS="--keep"`.
TENANTS ?= 1000
bench-tenants: install
	$(PY) -m benchmarks.tenants --tenants $(TENANTS) $(BENCH_ARGS)

bench-small: install
	$(PY) -m benchmarks.run --users 100000 --database sqlite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache test-artifacts
