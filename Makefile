# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench chaos eval install clean lock

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed  ## start everything on embedded defaults, load seeds/, print the URLs
	$(VENV)/bin/platograph up

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports  # the house plan: contracts in pyproject.toml

test: $(VENV)/.installed lint  ## the whole suite: unit, integration and end-to-end, external and embedded servers
	$(PY) -m pytest

bench: $(VENV)/.installed  ## the benchmarks (see bench/README.md)
	$(PY) bench/core.py
	$(PY) bench/similarity.py
	$(PY) bench/webhooks.py
	$(PY) bench/reembed.py
	$(PY) bench/reembed_diff.py --entities 100000
	$(PY) bench/ann.py --source real --points 100000
	$(PY) bench/ann.py --source synthetic --points 1000000

chaos: $(VENV)/.installed  ## kill -9 every process and embedded server in turn under load; print what was lost
	$(PY) bench/chaos.py

eval: $(VENV)/.installed  ## similarity quality on ../shared/eval, against a running `make run`
	$(VENV)/bin/platograph eval

lock: $(VENV)/.installed  ## pin the image's dependencies with hashes (deploy/requirements.lock) after changing pyproject.toml
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --no-header --annotation-style line -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .platograph .pytest_cache .mypy_cache .ruff_cache
