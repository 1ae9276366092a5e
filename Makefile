# memgpt_lab: everything a fresh clone needs, from two commands.
#   make lab    virtual environment, install, JupyterLab on notebooks/ (loopback)
#   make test   virtual environment, install, system packages, lint, types, every test
#   make bench  the benchmarks, printing figures and ratios

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests drive: a browser for the widget checks, Node's ws for a foreign client.
SYSTEM_PACKAGES := chromium node-ws
LAB_PORT ?= 8888

.PHONY: install system-deps npm-deps lab test lint unit notebooks browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -d /usr/share/nodejs/ws ] || [ -d /usr/lib/nodejs/ws ] || missing="$$missing node-ws"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# npm packages the tests run with Node, kept out of the tree (ignored): the HAR 1.2 schema validator.
NPM_PACKAGES := har-validator@5.1.5
NPM_STAMP    := .cache/npm/node_modules/har-validator/package.json

$(NPM_STAMP):
	npm install --prefix .cache/npm --no-audit --no-fund --no-save --loglevel=error $(NPM_PACKAGES)

npm-deps: $(NPM_STAMP)

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: install
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

lint: install
	$(BIN)/ruff check memgpt_lab tests bench
	$(BIN)/ruff format --check memgpt_lab tests bench
	$(BIN)/mypy

test: install system-deps npm-deps lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output .cache
