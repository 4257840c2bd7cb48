# The two commands of the README's quick start: `make demo` and `make test`.
# Each installs what it needs into .venv first (Python packages from PyPI, Cassandra jars from
# Maven Central on the first start of a node).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint cassandra-start cassandra-stop clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m tools.local_cassandra start --nodes 2
	$(PY) -m tools.demo

test: install
	$(PY) -m pytest tests

lint: install
	$(VENV)/bin/ruff check .

cassandra-start: install
	$(PY) -m tools.local_cassandra start --nodes 2

cassandra-stop:
	$(PYTHON) -m tools.local_cassandra stop

clean: cassandra-stop
	rm -rf .local failed_rows migrator.log migration_summary.json
