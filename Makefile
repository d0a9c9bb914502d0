# Every target bootstraps .venv itself, so each works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-services test-postgres service-tests stock stock-matrix docs-code mutate stress lint typecheck tox docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e ".[drf]" --group test --group services --group docs --group tox \
		--group lint
	touch $(STAMP)

# The demo needs only the package with its drf extra: a fresh clone installs just that (the
# development groups come with the first target that needs them).
DEMO_STAMP := $(VENV)/.demo-installed

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[drf]"
	touch $(DEMO_STAMP)

demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))  ## run the example shop against the offline sandbox
	$(PY) example_project/run_demo.py

test: $(STAMP)  ## the default suite: in-memory SQLite, no Celery app, sandbox over loopback HTTP
	$(PY) -m pytest -q

PG_URL ?= postgres://postgres@127.0.0.1:5432/plugipay
BROKER_URL ?= redis://127.0.0.1:6379/15

test-services: test-postgres service-tests  ## the suite on PostgreSQL, then a real Celery worker on Redis and Chromium

test-postgres: $(STAMP)  ## the default suite on PostgreSQL
	DATABASE_URL=$(PG_URL) $(PY) -m pytest -q

service-tests: $(STAMP)  ## the service tests alone: a real Celery worker on Redis, django-tasks workers, PostgreSQL concurrency, Chromium
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BROKER_URL) PLUGIPAY_REQUIRE_SERVICES=1 \
		$(PY) -m pytest -q -m services
	PLUGIPAY_SQLITE_TEST_FILE=$(CURDIR)/.venv/test-workers.sqlite3 PLUGIPAY_REQUIRE_SERVICES=1 \
		$(PY) -m pytest -q -m services tests/services/test_django_tasks_worker.py

mutate: $(STAMP)  ## break each key guarantee in a copy of the tree; its tests must fail
	DATABASE_URL=$(PG_URL) $(PY) tests/mutations.py

SUITE ?= test
RUNS ?= 20

stress: $(STAMP)  ## RUNS× the suite (SUITE=test|services|service-tests) with a second copy running alongside
	PG_URL=$(PG_URL) BROKER_URL=$(BROKER_URL) tests/stress.sh $(SUITE) $(RUNS)

stock: $(STAMP)  ## the tutorial and the async and billing how-tos followed step by step on a fresh startproject project, then 40 payments and a refund over HTTP (no Celery, broker down, django.tasks)
	$(PY) scripts/stock_project.py $(STOCK_ARGS)

docs-code: $(STAMP)  ## copy docs/tutorial/'s files into the pages that show them (a test fails when a copy is stale)
	$(PY) scripts/doc_steps.py --write

stock-matrix: $(STAMP)  ## the stock project once per setting a project adds (USE_TZ, ATOMIC_REQUESTS on SQLite and PG_URL, login middleware, LANGUAGE_CODE, a UUID user model)
	$(PY) scripts/stock_project.py --matrix --postgres $(PG_URL) $(STOCK_ARGS)

lint: $(STAMP)  ## ruff, migration drift and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m django makemigrations django_plugipay --check --dry-run --settings=tests.settings
	$(MAKE) --no-print-directory typecheck

typecheck: $(STAMP)  ## mypy with django-stubs over django_plugipay and plugipay_sandbox
	$(VENV)/bin/mypy

TOX_PARALLEL ?= auto
tox: $(STAMP)  ## the whole Python × Django matrix of tox.ini in parallel (TOXENV=… picks some)
	$(VENV)/bin/tox run-parallel -p $(TOX_PARALLEL) --parallel-no-spinner \
		$(if $(TOXENV),-e $(TOXENV),) $(TOX_ARGS)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

bench: $(STAMP)  ## the benchmarks (BENCH_QUICK=1: small counts, proves the harness end to end; BENCH_PROFILE=1: the sampled profile too)
	$(PY) benchmarks/run.py $(if $(BENCH_QUICK),--quick,)

messages: $(STAMP)  ## refresh the Indonesian catalog from the code, then compile it (needs GNU gettext)
	cd django_plugipay && ../$(VENV)/bin/django-admin makemessages -l id --no-obsolete --no-location
	cd django_plugipay && ../$(VENV)/bin/django-admin compilemessages -l id
	cd example_project/shop && ../../$(VENV)/bin/django-admin makemessages -l id --no-obsolete --no-location
	cd example_project/shop && ../../$(VENV)/bin/django-admin compilemessages -l id
	@echo "Translate every empty msgstr (and clear any '#, fuzzy') in the django.po files, then run make messages again."

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache artifacts
