package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// statusClientClosedRequest is nginx's code for a request whose client went
// away before the answer was written; no HTTP status means that.
const statusClientClosedRequest = 499

// instrument wraps the API in its telemetry. It joins the caller's trace
// and, once the handler has answered, records one span, one histogram
// observation and one log line, all with the same status code.
func instrument(next http.Handler, tel *telemetry, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The handlers make no spans and log nothing of their own, so the
		// request keeps its context: a copy of it would cost more than the
		// rest of the span.
		sc, span := tel.startSpan(r)
		rec := &statusRecorder{ResponseWriter: w}
		tel.http.active.Add(1)
		next.ServeHTTP(rec, r) // the mux sets r.Pattern
		tel.http.active.Add(-1)
		end := time.Now()

		x := exchange{method: methodLabel(r.Method), route: route(r.Pattern), code: rec.status(r.Context()), elapsed: end.Sub(start)}
		if span != nil {
			endSpan(span, r, x, end)
		}
		tel.http.observe(x.method, x.route, x.code, x.elapsed, end, sc)
		logRequest(r.Context(), logger.Handler(), r, x, sc, end, rec.interim)
	})
}

// exchange is what the telemetry of one request reports.
type exchange struct {
	method  string // bounded: "_OTHER" for methods HTTP does not define
	route   string // "" when no route matched
	code    int
	elapsed time.Duration
}

// endSpan names the recorded span and sets its attributes as the HTTP
// semantic conventions say.
func endSpan(span trace.Span, r *http.Request, x exchange, end time.Time) {
	method := x.method
	if method == "_OTHER" {
		method = "HTTP"
	}
	if x.route != "" {
		span.SetName(method + " " + x.route)
	} else {
		span.SetName(method)
	}
	span.SetAttributes(
		semconv.HTTPRequestMethodKey.String(x.method),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme("http"),
		semconv.HTTPResponseStatusCode(x.code),
		semconv.NetworkProtocolVersion(fmt.Sprintf("%d.%d", r.ProtoMajor, r.ProtoMinor)),
		semconv.ServerAddress(hostOnly(r.Host)),
		semconv.ClientAddress(hostOnly(r.RemoteAddr)),
		semconv.UserAgentOriginal(r.UserAgent()),
	)
	if x.route != "" {
		span.SetAttributes(semconv.HTTPRoute(x.route))
	}
	if x.method == "_OTHER" {
		span.SetAttributes(semconv.HTTPRequestMethodOriginal(r.Method))
	}
	if x.code >= 500 { // a 4xx is the client's error, not the server's
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(x.code)))
		span.SetStatus(codes.Error, "")
	}
	span.End(trace.WithTimestamp(end))
}

// logEachRequest writes one line per request through a plain log/slog
// logger: what a typical Go service does, and the yardstick make bench
// holds the instrumented server against (-telemetry=slog).
func logEachRequest(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status(r.Context())),
			slog.Duration("duration", time.Since(start)),
		)
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

// status is the request's outcome: the code the handler sent; when it sent
// nothing, 503 if the server cut it off at shutdown, 499 if the client had
// gone away (ctx is the request's), else 200, which net/http sends for a
// handler that wrote nothing.
func (r *statusRecorder) status(ctx context.Context) int {
	switch {
	case r.code != 0:
		return r.code
	case errors.Is(context.Cause(ctx), errCutOff):
		return http.StatusServiceUnavailable
	case ctx.Err() != nil:
		return statusClientClosedRequest
	}
	return http.StatusOK
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

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

// hostOnly drops the port from host:port.
func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}
