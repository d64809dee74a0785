package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// testAPI is the real API handler on a loopback listener, with its
// telemetry, a copy of everything it logged and every span it ended.
type testAPI struct {
	*httptest.Server
	st    *status
	tel   *telemetry
	logs  *syncBuffer
	spans *tracetest.SpanRecorder
}

func newTestAPI(t *testing.T, st *status) *testAPI {
	t.Helper()
	tel, err := newTelemetry(t.Context(), func(string) string { return "" }, "")
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tel.tracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	tel.tracer = tel.tracerProvider.Tracer(scopeName)
	t.Cleanup(func() { _ = tel.shutdown(context.WithoutCancel(t.Context())) })
	registerStateMetrics(tel.registry, st)
	logs := &syncBuffer{}
	srv := httptest.NewServer(newHandler(newLogger(logs, slog.LevelDebug, nil), st, tel))
	t.Cleanup(srv.Close)
	return &testAPI{Server: srv, st: st, tel: tel, logs: logs, spans: spans}
}

// seededStatus is a status whose flaky draws are fixed by seed.
func seededStatus(flaky bool, maxDelay time.Duration, seed uint64) *status {
	return newStatus(flaky, 0, maxDelay, rand.New(rand.NewPCG(seed, seed)))
}

// do sends one request and returns the answer with its body read.
func do(t *testing.T, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// scrape returns the metrics handler's output in the given format.
func scrape(t *testing.T, tel *telemetry, accept string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	metricsHandler(tel.registry).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// jsonLines decodes every line of s as a JSON object.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
