package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandler serves GET /status in process: bare, instrumented as
// shipped, and behind a plain log/slog JSON line. The differences are what
// the telemetry costs per request; make bench measures it over loopback.
func BenchmarkHandler(b *testing.B) {
	st := seededStatus(false, 0, 1)
	tel, err := newTelemetry(b.Context(), func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	defer tel.shutdown(b.Context())
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", newBareHandler(st)},
		{"instrumented", newHandler(newLogger(io.Discard, slog.LevelInfo, nil), st, tel)},
		{"slog", logEachRequest(slog.New(slog.NewJSONHandler(io.Discard, nil)), newBareHandler(st))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/status", nil)
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
