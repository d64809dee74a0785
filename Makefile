# make test runs every check CI runs, from a fresh clone: it creates the
# virtualenv, installs Prometheus 3, the LogQL grammar and the benchmark
# tools, builds and tests the Go server, lints the client and runs pytest.
GO ?= go
PYTHON ?= python3
NPM ?= npm
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := $(CURDIR)/.cache/tools

# Prometheus 3 for promtool and the live test, built from its Go module.
# The stack's image is v3.14.0; the Go modules of 3.14 and 3.15 carry replace
# directives, so go install takes 3.16 (module v0.316.0), the same major.
PROMETHEUS_VERSION := 3.16.0
PROMETHEUS_MODULE := v0.316.0
PROMETHEUS_DIR := $(TOOLS)/prometheus-$(PROMETHEUS_VERSION)

# sloth, which generates the SLOs' rules from prometheus/slos (docs/slo.md);
# its version is written into every generated file.
SLOTH_VERSION := 0.16.0
SLOTH := $(TOOLS)/sloth-$(SLOTH_VERSION)/sloth

.PHONY: test server-test compose-test client-lint pytest bench bench-tools alertmanager-tools up down preflight dist

test: server-test compose-test client-lint pytest

server-test:
	@unformatted=$$(cd server && gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd server && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# docker-compose.yml loaded by compose-go, the loader of Docker Compose v2.
compose-test:
	@unformatted=$$(cd tests/compose && gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd tests/compose && $(GO) vet ./... && $(GO) test -count=1 ./...

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

$(PROMETHEUS_DIR)/.installed:
	GOBIN=$(PROMETHEUS_DIR) $(GO) install \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(PROMETHEUS_VERSION)" \
	  github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_MODULE) \
	  github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_MODULE)
	touch $@

$(SLOTH):
	GOBIN=$(dir $@) $(GO) install -ldflags "-X github.com/slok/sloth/internal/info.Version=v$(SLOTH_VERSION)" \
	  github.com/slok/sloth/cmd/sloth@v$(SLOTH_VERSION)

# Grafana's LogQL and TraceQL grammars, for the query checks.
tests/%/node_modules/.installed: tests/%/package-lock.json
	$(NPM) ci --prefix tests/$* --no-audit --no-fund --silent
	touch $@

# $(call apt-install,PACKAGES): Debian's packages, as root.
define apt-install
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null
endef

client-lint: $(VENV)/.installed
	$(VENV)/bin/ruff check client tests bench demo
	$(VENV)/bin/ruff format --check client tests bench demo
	$(VENV)/bin/mypy client demo

pytest: $(VENV)/.installed $(PROMETHEUS_DIR)/.installed $(SLOTH) tests/logql/node_modules/.installed \
  tests/traceql/node_modules/.installed tests/grafana/node_modules/.installed bench-tools alertmanager-tools
	PROMTOOL=$(PROMETHEUS_DIR)/promtool PROMETHEUS=$(PROMETHEUS_DIR)/prometheus SLOTH=$(SLOTH) REQUIRE_STACK_TOOLS=1 \
	  $(PY) -m pytest

# The benchmarks: docs/benchmarks.md, regenerated from scratch (about 5 min).
bench: $(VENV)/.installed bench-tools
	cd server && $(GO) build -o ../bin/server .
	$(PY) -m bench --out docs/benchmarks.md

# wrk and blackbox_exporter come from Debian's packages (as root).
bench-tools:
	@command -v wrk >/dev/null && command -v prometheus-blackbox-exporter >/dev/null || { \
	  echo "Installing wrk and prometheus-blackbox-exporter from Debian's packages"; \
	  $(call apt-install,wrk prometheus-blackbox-exporter); }

# Alertmanager and amtool (check-config) for tests/test_stack_alertmanager.py,
# from Debian's package (as root): go install of its module has no UI assets.
alertmanager-tools:
	@command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || { \
	  echo "Installing prometheus-alertmanager from Debian's packages"; \
	  $(call apt-install,prometheus-alertmanager); }

# The stack. The first run writes a .env with random Grafana secrets.
up: preflight .env
	docker compose up -d --build

down:
	docker compose down

# The server and the monitor on this machine, without Docker, in one terminal
# (demo/). DEMO_PORT (8080) and DEMO_METRICS_PORT (9090) move the server;
# LOKI_URL and the programs' other variables pass through. Ctrl-C, or
# kill <make's pid>, stops the monitor, then the server. The recipe execs
# the script so that the SIGTERM make forwards to its recipe reaches it.
.PHONY: demo demo-preflight
demo: demo-preflight $(VENV)/.installed
	cd server && $(GO) build -o ../bin/server .
	exec $(PY) -m demo

demo-preflight:
	@command -v $(GO) >/dev/null || { \
	  echo "make demo: $(GO) not found: install Go 1.26.8 (server/go.mod asks for it)" >&2; exit 2; }
	@command -v $(PYTHON) >/dev/null || { \
	  echo "make demo: $(PYTHON) not found: install Python 3.11 or later" >&2; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "make demo: $(PYTHON) is $$($(PYTHON) -V 2>&1): Python 3.11 or later needed" >&2; exit 2; }

# What make up needs, checked before anything is written or started.
preflight:
	@command -v docker >/dev/null || { \
	  echo "make up: docker not found: install Docker Engine with the Compose v2 plugin, or Docker Desktop" >&2; exit 1; }
	@version=$$(docker compose version --short 2>/dev/null) || { \
	  echo "make up: 'docker compose' not found: install the Docker Compose v2 plugin (docker-compose-plugin)" >&2; exit 1; }; \
	  case "$${version#v}" in [2-9].*) ;; *) \
	    echo "make up: Docker Compose $$version found, version 2 or later needed" >&2; exit 1;; esac
	@unreadable=$$(find prometheus loki tempo grafana \( -type f ! -perm -o=r \) -o \( -type d ! -perm -o=rx \)); \
	  if [ -n "$$unreadable" ]; then \
	    echo "make up: the containers' users cannot read these files (checked out with a strict umask?):" >&2; \
	    echo "$$unreadable" | sed 's/^/  /' >&2; \
	    echo "Fix: chmod -R a+rX prometheus loki tempo grafana" >&2; exit 1; fi

# Written to a temporary file and renamed: an interrupted run leaves no
# half-written .env behind, which make would never rewrite.
.env:
	@command -v python3 >/dev/null || { echo "make up: python3 not found: it writes the secrets of .env" >&2; exit 1; }
	@umask 077 && tmp=$$(mktemp .env.XXXXXX) && \
	  if python3 -c 'import secrets; print( \
	      f"GRAFANA_ADMIN_PASSWORD={secrets.token_hex(16)}\n" \
	      f"GRAFANA_SECRET_KEY={secrets.token_hex(32)}\n" \
	      "GRAFANA_ANONYMOUS_VIEWING=true")' > "$$tmp"; \
	  then mv "$$tmp" $@; else rm -f "$$tmp"; exit 1; fi
	@echo "Wrote .env with a random Grafana admin password (user admin): see GRAFANA_ADMIN_PASSWORD there."

# The archive the brief asks for: a clean clone, Git history included,
# without anything ignored or uncommitted, and without a remote that would
# point at this machine's path.
DIST ?= dist/statuswatch.tar.gz
dist:
	@if [ -n "$$(git status --porcelain)" ]; then \
	  echo "make dist: warning: these changes are not committed and not in the archive:" >&2; \
	  git status --short >&2; fi
	@tmp=$$(mktemp -d) && git clone --quiet --no-hardlinks . "$$tmp/statuswatch" \
	  && git -C "$$tmp/statuswatch" remote remove origin \
	  && mkdir -p $(dir $(DIST)) && tar -czf $(DIST) -C "$$tmp" statuswatch && rm -rf "$$tmp"
	@echo "Wrote $(DIST)"

# The Helm chart: its tools, and pytest needing them (tests/helm/tools.mk).
include tests/helm/tools.mk
