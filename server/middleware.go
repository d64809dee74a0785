package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// logRequests writes one log line per request. It runs inside the otelhttp
// handler, so the line carries the request's trace and span IDs.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		elapsed := time.Since(start)

		status := rec.status()
		rt := route(r.Pattern)
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		case rt == "/healthz":
			level = slog.LevelDebug // health checks would drown everything else
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", rt),
			slog.String("path", truncate(r.URL.Path, 256)),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		}
		if rec.interim != 0 {
			attrs = append(attrs, slog.Int("interim_status", rec.interim))
		}
		// The message reads on its own (in Loki it is the line); the fields stay attributes.
		msg := fmt.Sprintf("%s %s -> %d in %.1f ms", r.Method, truncate(r.URL.Path, 256), status, float64(elapsed.Microseconds())/1000)
		logger.LogAttrs(r.Context(), level, msg, attrs...)
	})
}

// statusRecorder remembers the final status code a handler sent, and the
// last informational (1xx) one, which net/http sends ahead of the final.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	interim int
}

func (r *statusRecorder) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		r.interim = code
	} else if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// status is the final code on the wire: net/http sends 200 for a handler
// that wrote nothing.
func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countActive keeps a gauge of the requests being handled.
func countActive(active metric.Int64UpDownCounter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(r.Context(), 1)
		defer active.Add(r.Context(), -1)
		next.ServeHTTP(w, r)
	})
}

// readBody reads every request body, at most max bytes, before a route sees
// the request: an over-long body is refused with 413 and a malformed one (a
// bad chunk size) with 400, so neither reaches a handler that changes state.
// Chunked bodies have no Content-Length, so only reading them bounds them.
func readBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		var tooLong *http.MaxBytesError
		switch {
		case errors.As(err, &tooLong):
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", max), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "malformed request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// route returns the path part of a ServeMux pattern ("GET /status" gives
// "/status"), or "" when no pattern matched.
func route(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}
