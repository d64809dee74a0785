package main

import (
	"log/slog"
	"net/http"
)

// maxBodyBytes bounds request bodies. No route reads one; the bound keeps a
// client from making the server read an unbounded upload.
const maxBodyBytes = 64 << 10

// newHandler returns the API: every route is listed here. Wrong methods on a
// known path get 405 with an Allow header from ServeMux, unknown paths 404.
func newHandler(logger *slog.Logger, st *status) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /status", handleGetStatus(st))
	mux.Handle("POST /status/{code}", handleSetStatus(st))
	mux.Handle("GET /flaky", handleGetFlaky(st))
	mux.Handle("POST /flaky", handleToggleFlaky(st))
	mux.Handle("GET /healthz", handleHealthz())

	var h http.Handler = mux
	h = limitBody(maxBodyBytes, h)
	return logRequests(logger, h)
}
