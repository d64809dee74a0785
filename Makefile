# make test runs every check CI runs, from a fresh clone: it creates the
# virtualenv, builds and tests the Go server, lints the client and runs pytest.
GO ?= go
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test server-test client-lint pytest

test: server-test client-lint pytest

server-test:
	@unformatted=$$(cd server && gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd server && $(GO) vet ./... && $(GO) test -race -count=1 ./...

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

client-lint: $(VENV)/.installed
	$(VENV)/bin/ruff check client tests
	$(VENV)/bin/ruff format --check client tests
	$(VENV)/bin/mypy client

pytest: $(VENV)/.installed
	$(PY) -m pytest
