package main

import (
	"log/slog"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
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

// newHandler is the API, instrumented: a span per request, the request
// duration histogram and one log line per request.
func newHandler(logger *slog.Logger, st *status, tel *telemetry) http.Handler {
	h := logRequests(logger, newBareHandler(st))
	h = countActive(tel.activeRequests, h)
	return otelhttp.NewHandler(h, "http.server",
		otelhttp.WithTracerProvider(tel.tracerProvider),
		otelhttp.WithMeterProvider(tel.meterProvider),
		otelhttp.WithPropagators(tel.propagator),
		otelhttp.WithSpanNameFormatter(spanName),
	)
}

// spanName follows the HTTP semantic conventions: "{method} {route}" once the
// mux has matched a pattern, the bare method before (or when none matched).
func spanName(_ string, r *http.Request) string {
	if r.Pattern != "" {
		return r.Method + " " + route(r.Pattern)
	}
	return r.Method
}
