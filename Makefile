# Every target bootstraps .venv itself, so each works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-services mutate stress lint tox docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e ".[drf]" --group test --group services --group docs --group tox
	touch $(STAMP)

demo: $(STAMP)  ## run the example shop against the offline sandbox
	$(PY) example_project/run_demo.py

test: $(STAMP)  ## the default suite: SQLite, eager Celery, sandbox over loopback HTTP
	$(PY) -m pytest -q

PG_URL ?= postgres://postgres@127.0.0.1:5432/plugipay
BROKER_URL ?= redis://127.0.0.1:6379/15

test-services: $(STAMP)  ## the suite on PostgreSQL, then a real Celery worker on Redis and Chromium
	DATABASE_URL=$(PG_URL) $(PY) -m pytest -q
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BROKER_URL) PLUGIPAY_REQUIRE_SERVICES=1 \
		$(PY) -m pytest -q -m services

mutate: $(STAMP)  ## break each key guarantee in a copy of the tree; its tests must fail
	DATABASE_URL=$(PG_URL) $(PY) tests/mutations.py

SUITE ?= test
RUNS ?= 20

stress: $(STAMP)  ## RUNS× the suite (SUITE=test|services) with a second copy running alongside
	PG_URL=$(PG_URL) BROKER_URL=$(BROKER_URL) tests/stress.sh $(SUITE) $(RUNS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m django makemigrations django_plugipay --check --dry-run --settings=tests.settings

tox: $(STAMP)  ## the Python × Django matrix of tox.ini (TOXENV=… picks some)
	$(VENV)/bin/tox run $(if $(TOXENV),-e $(TOXENV),)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build .pytest_cache artifacts
