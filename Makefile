# The two commands of the README's quick start: `make demo` and `make test`.
# Each installs what it needs into .venv first: exactly the versions of requirements.lock (pip
# constraints; setup.py keeps ranges for those who use the transforms as a library), and the
# Cassandra jars of tools/pins.py from Maven Central on the first start of a node.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
# The lock is made for the project's machines: CPython 3.11 on x86-64 Linux (glibc).
LOCK_ARGS := setup.py requirements.in --extra test --extra bench --extra gcp \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock" -o $(LOCK)

.PHONY: install demo test lint lock upgrade cassandra-start cassandra-stop clean

# A new lock or setup.py makes a new venv, so that nothing of an older set stays behind.
$(VENV)/.installed: setup.py $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) pip setuptools wheel uv
	$(PY) -m pip install -q -c $(LOCK) --build-constraint $(LOCK) -e '.[test,bench]'
	$(PY) -m tools.pins installed
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m tools.local_cassandra start --nodes 2
	$(PY) -m tools.demo

test: install
	$(PY) -m pytest tests

lint: install
	$(VENV)/bin/ruff check .

# The lock again from setup.py's ranges, keeping every version it has where the ranges allow;
# then the files that follow it (the Dockerfile's base image, the README).
lock: install
	$(VENV)/bin/uv pip compile $(LOCK_ARGS)
	$(PY) -m tools.pins sync

# The newest versions inside setup.py's ranges, then the whole test suite on them (a new venv).
# Before committing the new lock: the bench figures within noise (BENCHMARKS.md).
upgrade: install
	$(VENV)/bin/uv pip compile --upgrade $(LOCK_ARGS)
	$(PY) -m tools.pins sync
	$(MAKE) test

cassandra-start: install
	$(PY) -m tools.local_cassandra start --nodes 2

cassandra-stop:
	$(PYTHON) -m tools.local_cassandra stop

clean: cassandra-stop
	rm -rf .local failed_rows migrator.log migration_summary.json
