# make test runs every check CI runs, from a fresh clone.
GO ?= go

.PHONY: test server-test

test: server-test

server-test:
	@unformatted=$$(cd server && gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd server && $(GO) vet ./... && $(GO) test -race -count=1 ./...
