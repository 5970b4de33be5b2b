# The two commands of the README: `make run` and `make test`. Both set everything up first,
# the web UI included (npm ci, API client generated from the app's OpenAPI, vite build into
# src/opsflow/web_dist, which `opsflow server` serves at /).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
WEB_DEPS := web/node_modules/.installed-$(shell cat web/package-lock.json | cksum | cut -d' ' -f1)

.PHONY: setup web packages run test lint typecheck unit integration bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,terraform,ansible]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

$(WEB_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	rm -f web/node_modules/.installed-*
	touch $(WEB_DEPS)

# Always rebuilt: the API client is generated from the app, so a changed route fails here.
web: setup $(WEB_DEPS)
	cd web && PYTHON=$(abspath $(BIN)/python) npm run build

# `make run PORT=9000` listens on another port (OPSFLOW_PORT works too; PORT wins).
run: web
	$(BIN)/opsflow server --demo --data-dir ./data $(if $(PORT),--port $(PORT))

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy tests benchmarks

# Debian packages the tests drive for real: Chromium for the browser tests (Playwright
# downloads no browser here), Prometheus Alertmanager for incident triggers, git for git
# triggers, OpenSSH's sshd and ssh-keygen for ssh steps (tests start sshd on loopback ports), sudo
# for the ssh step's sudo: true. Installed when missing and run as root; otherwise says what to install.
SYSTEM_PACKAGES = chromium:/usr/bin/chromium prometheus-alertmanager:/usr/bin/prometheus-alertmanager \
  git:/usr/bin/git openssh-server:/usr/sbin/sshd openssh-client:/usr/bin/ssh-keygen \
  sudo:/usr/bin/sudo
packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  test -x "$${p#*:}" || missing="$$missing $${p%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "install Debian's$$missing (apt-get install$$missing) for the tests" >&2; exit 1; fi; fi

# vitest first; pytest (with the browser tests in tests/e2e) last, so its summary ends the output.
# src is byte-compiled first: the editable install leaves it uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set (these machines set it) every server, agent and CLI process the
# suite starts would compile opsflow's modules again (0.3 s of CPU for the server's).
test: lint typecheck web packages
	cd web && npx vitest run
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest -q --durations=25 $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/engine_chain.py
