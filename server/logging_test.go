package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"testing"
)

func TestRequestLogLines(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	send := func(method, path string) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, api.URL+path, nil)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lines := jsonLines(t, api.logs.String())
		return lines[len(lines)-1]
	}

	tests := []struct {
		method, path string
		severity     string
		route        string
		status       float64
	}{
		{"GET", "/status", "INFO", "/status", 200},
		{"POST", "/status/503", "INFO", "/status/{code}", 202},
		{"GET", "/status", "ERROR", "/status", 503},
		{"POST", "/status/abc", "WARN", "/status/{code}", 400},
		{"GET", "/nope", "WARN", "", 404},
		{"GET", "/healthz", "DEBUG", "/healthz", 200},
	}
	for _, tt := range tests {
		line := send(tt.method, tt.path)
		for key, want := range map[string]any{
			"severity": tt.severity, "method": tt.method, "route": tt.route,
			"path": tt.path, "status": tt.status, "trace_id": traceID,
		} {
			if line[key] != want {
				t.Errorf("%s %s: %s = %v, want %v (line %v)", tt.method, tt.path, key, line[key], want, line)
			}
		}
		head := fmt.Sprintf("%s %s -> %d in ", tt.method, tt.path, int(tt.status))
		if msg, _ := line["message"].(string); !regexp.MustCompile(`^` + regexp.QuoteMeta(head) + `\d+\.\d ms$`).MatchString(msg) {
			t.Errorf("%s %s: message %q, want %q and the duration", tt.method, tt.path, msg, head)
		}
		for _, key := range []string{"timestamp", "duration_ms", "span_id"} {
			if _, ok := line[key]; !ok {
				t.Errorf("%s %s: no %s in %v", tt.method, tt.path, key, line)
			}
		}
	}
}

// TestJSONHandlerWritesWhatSlogWould logs the same records through the
// server's handler and through log/slog's JSONHandler (with the original's
// key names): both lines decode to the same object.
func TestJSONHandlerWritesWhatSlogWould(t *testing.T) {
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0, 0xf0, 2},
	}))
	at := time.Date(2026, 12, 1, 5, 0, 0, 123456789, time.FixedZone("CET", 3600))
	records := []struct {
		ctx   context.Context
		level slog.Level
		msg   string
		attrs []slog.Attr
	}{
		{t.Context(), slog.LevelInfo, "server started", []slog.Attr{
			slog.String("addr", "127.0.0.1:8080"), slog.Bool("flaky", true), slog.Duration("delay", 1500*time.Millisecond),
			slog.Uint64("seed", math.MaxUint64), slog.Int("n", -42), slog.Time("at", at),
		}},
		{ctx, slog.LevelError, "GET /x -> 503 in 0.042 ms", []slog.Attr{
			slog.String("path", "/\"quoted\"\\back\nline\ttab\x01\x7f é ☃ \xff end"), slog.Float64("duration_ms", 0.042),
			slog.Float64("big", 1e21), slog.Float64("small", 1e-7), slog.Float64("zero", 0), slog.Float64("whole", 3),
		}},
		{ctx, slog.LevelWarn, "telemetry error", []slog.Attr{
			slog.Any("error", errors.New("export failed: <timeout> & more")), slog.Any("list", []int{1, 2}),
			slog.Any("map", map[string]any{"a": "b"}), {},
		}},
		{t.Context(), slog.LevelDebug, "", nil},
	}
	for _, r := range records {
		var ours, theirs bytes.Buffer
		reference := slog.New(traceIDs{slog.NewJSONHandler(&theirs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: renameKeys})})
		rec := slog.NewRecord(at, r.level, r.msg, 0)
		rec.AddAttrs(r.attrs...)
		if err := newJSONHandler(&ours, slog.LevelDebug).Handle(r.ctx, rec); err != nil {
			t.Fatal(err)
		}
		reference.Handler().Handle(r.ctx, rec)
		if !json.Valid(ours.Bytes()) || !strings.HasSuffix(ours.String(), "}\n") || strings.Count(ours.String(), "\n") != 1 {
			t.Fatalf("not one JSON line: %q", ours.String())
		}
		got, want := jsonLines(t, ours.String()), jsonLines(t, theirs.String())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", r.msg, ours.String(), theirs.String())
		}
	}
}

// TestRequestLineBothWays: the request line the handler writes directly is
// the line it writes for the same line as a slog record, which is what
// other handlers (OTLP) get.
func TestRequestLineBothWays(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2}, SpanID: trace.SpanID{3}})
	at := time.Date(2026, 12, 1, 5, 0, 0, 1000, time.UTC)
	for _, line := range []requestLine{
		{slog.LevelInfo, at, sc, "GET", "/status", "/status", 200, 0.042, 0},
		{slog.LevelError, at, sc, "POST", "/status/{code}", "/status/503", 503, 1500, 0},
		{slog.LevelInfo, at, trace.SpanContext{}, "GET", "/status", "/status", 200, 0, 103},
		{slog.LevelWarn, at, sc, "BR\"EW", "", "/a \"b\"\n\x01\xff é/\\", 405, 0.001, 0},
	} {
		var direct, viaRecord bytes.Buffer
		h := newJSONHandler(&direct, slog.LevelDebug).WithAttrs([]slog.Attr{slog.String("service", "x")}).(*jsonHandler)
		if err := h.writeRequest(line); err != nil {
			t.Fatal(err)
		}
		h.w = &viaRecord
		if err := h.Handle(trace.ContextWithSpanContext(t.Context(), line.sc), line.record()); err != nil {
			t.Fatal(err)
		}
		if direct.String() != viaRecord.String() || !json.Valid(direct.Bytes()) {
			t.Errorf("direct:\n%s\nvia a record:\n%s", direct.String(), viaRecord.String())
		}
	}
}

// renameKeys and traceIDs make slog.JSONHandler write the original's keys
// and the trace IDs: the reference for the server's own handler.
func renameKeys(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String("timestamp", a.Value.Time().UTC().Format(time.RFC3339Nano))
	case slog.LevelKey:
		a.Key = "severity"
	case slog.MessageKey:
		a.Key = "message"
	}
	return a
}

type traceIDs struct{ slog.Handler }

func (h traceIDs) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// TestFlushingWriter: lines reach the underlying writer within the flush
// interval without anyone asking, as soon as 64 KiB are waiting, and at
// Close.
func TestFlushingWriter(t *testing.T) {
	var out syncBuffer
	w := newFlushingWriter(&out, 10*time.Millisecond)
	fmt.Fprintln(w, "first")
	waitFor(t, func() bool { return out.String() == "first\n" })
	slow := newFlushingWriter(&out, time.Hour)
	fmt.Fprintln(slow, "second")
	if out.String() != "first\n" {
		t.Fatalf("written before a flush: %q", out.String())
	}
	if err := slow.Close(); err != nil || out.String() != "first\nsecond\n" {
		t.Fatalf("after Close: %q %v", out.String(), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	var big syncBuffer
	full := newFlushingWriter(&big, time.Hour)
	line := strings.Repeat("x", 1023) + "\n"
	for range flushAt / len(line) {
		fmt.Fprint(full, line)
	}
	waitFor(t, func() bool { return len(big.String()) == flushAt }) // long before the hour
	for range flushLimit / len(line) {
		fmt.Fprint(full, line)
	}
	if err := full.Close(); err != nil || len(big.String()) != flushAt+flushLimit {
		t.Fatalf("after Close: %d bytes, %v; want %d", len(big.String()), err, flushAt+flushLimit)
	}
}
