package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHandler serves GET /status in process: bare, instrumented as
// shipped, and behind a plain log/slog JSON line. The differences are what
// the telemetry costs per request; make bench measures it over loopback.
func BenchmarkHandler(b *testing.B) {
	st := seededStatus(false, 0, 1)
	tel, err := newTelemetry(b.Context(), func(string) string { return "" }, "")
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
			before := cpuTime(b)
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
			// On a shared machine wall time per op depends on the other
			// processes; the CPU the process spent per op much less.
			b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has used, GC workers included.
func cpuTime(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
