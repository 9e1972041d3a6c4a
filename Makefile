# Fresh machine: only Python 3.11+ and pip are needed. `make run` / `make test` build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: venv run check test lint audit format clean evaluate

venv: $(STAMP)

# Reinstalls whenever pyproject.toml or this file changes; the stamp is only written after a full success.
$(STAMP): pyproject.toml Makefile
	@# Without the python3-venv package there is no ensurepip: fall back to the system pip.
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { \
		$(PYTHON) -m venv --clear --without-pip $(VENV) && \
		$(PYTHON) -m pip --python $(VENV)/bin/python install pip; }
	@# setuptools: the venv module still seeds 65.5, which has known vulnerabilities (make audit).
	$(VENV)/bin/python -m pip install --upgrade pip "setuptools>=83"
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $(STAMP)

# The whole app on embedded Redis + SecantusDB + SQLite at http://127.0.0.1:8000 (PORT=... to change),
# as people will see it: DEBUG off. DEBUG=1 for Django's debug pages.
run: $(STAMP)
	$(if $(DEBUG),DJANGO_DEBUG=$(DEBUG) )$(VENV)/bin/python -m devtools.devstack run

# What CI runs (.ci/run): ruff, the dependency audit, then the tests; the first failure stops it.
check: lint audit test

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Known vulnerabilities in the installed dependencies; offline it falls back to a snapshot and says so.
audit: $(STAMP)
	$(VENV)/bin/python security/audit.py

# The bundled model on the test split of every shared data set: docs/evaluation/summary.md (WEIGHTS=dir for others).
evaluate: $(STAMP)
	$(VENV)/bin/python -m ml.evaluate_all $(if $(WEIGHTS),--weights $(WEIGHTS))

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Keeps var/ (your database, media and model cache); delete it yourself to start over.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
