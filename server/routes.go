package main

import (
	"log/slog"
	"net/http"
)

// maxBodyBytes bounds request bodies. No route needs one; the bound keeps a
// client from making the server read an unbounded upload.
const maxBodyBytes = 64 << 10

// routes lists every route of the API. Wrong methods on a known path get 405
// with an Allow header from ServeMux, unknown paths 404.
func routes(st *status) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /status", handleGetStatus(st))
	mux.Handle("POST /status/{code}", handleSetStatus(st))
	mux.Handle("GET /flaky", handleGetFlaky(st))
	mux.Handle("POST /flaky", handleToggleFlaky(st))
	mux.Handle("GET /healthz", handleHealthz())
	return mux
}

// newBareHandler is the API without telemetry (-telemetry=false), to
// measure what the instrumentation costs.
func newBareHandler(st *status) http.Handler {
	return readBody(maxBodyBytes, routes(st))
}

// newHandler is the API, instrumented: a span, a request duration
// observation and a log line per request.
func newHandler(logger *slog.Logger, st *status, tel *telemetry) http.Handler {
	return instrument(newBareHandler(st), tel, logger)
}
