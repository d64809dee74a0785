package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// logFlushEvery bounds how long a log line waits in the buffer: a crash
// loses at most this much of the log.
const logFlushEvery = 100 * time.Millisecond

// newLogger writes JSON lines to stdout with the keys of the exercise's
// original server (timestamp, severity, message) plus trace_id and span_id
// when a span is active. When otlp is not nil, every record also goes there.
func newLogger(stdout io.Writer, level slog.Leveler, otlp slog.Handler) *slog.Logger {
	var h slog.Handler = newJSONHandler(stdout, level)
	if otlp != nil {
		h = slog.NewMultiHandler(h, minLevel{otlp, level})
	}
	return slog.New(h)
}

// logRequest writes the request's line: its level says how it went (5xx
// error, 4xx warning, health checks debug, the rest info), its message
// reads as a sentence and its fields are for queries.
func logRequest(ctx context.Context, h slog.Handler, r *http.Request, x exchange, sc trace.SpanContext, end time.Time, interim int) {
	level := slog.LevelInfo
	switch {
	case x.code >= 500:
		level = slog.LevelError
	case x.code >= 400:
		level = slog.LevelWarn
	case x.route == "/healthz":
		level = slog.LevelDebug // health checks would drown everything else
	}
	if !h.Enabled(ctx, level) {
		return
	}
	line := requestLine{
		level: level, time: end, sc: sc,
		method: r.Method, route: x.route, path: truncate(r.URL.Path, 256),
		code: x.code, ms: float64(x.elapsed.Microseconds()) / 1000, interim: interim,
	}
	// A failing stdout has no better place to be reported.
	if jh, ok := h.(*jsonHandler); ok && jh.group == "" {
		_ = jh.writeRequest(line)
		return
	}
	_ = h.Handle(trace.ContextWithSpanContext(ctx, sc), line.record())
}

// requestLine is what a request's log line says.
type requestLine struct {
	level               slog.Level
	time                time.Time
	sc                  trace.SpanContext
	method, route, path string
	code                int
	ms                  float64
	interim             int // the last 1xx sent before the final answer, or 0
}

// record is the line as a slog record; the span context goes in the
// context handed to the handler.
func (l requestLine) record() slog.Record {
	var buf [128]byte
	r := slog.NewRecord(l.time, l.level, string(l.appendMessage(buf[:0], appendText)), 0)
	r.AddAttrs(
		slog.String("method", l.method),
		slog.String("route", l.route),
		slog.String("path", l.path),
		slog.Int("status", l.code),
		slog.Float64("duration_ms", l.ms),
	)
	if l.interim != 0 {
		r.AddAttrs(slog.Int("interim_status", l.interim))
	}
	return r
}

// appendMessage appends "GET /status -> 503 in 12.3 ms", the method and
// path through text (to escape them, or not).
func (l requestLine) appendMessage(b []byte, text func([]byte, string) []byte) []byte {
	b = append(text(b, l.method), ' ')
	b = text(b, l.path)
	b = strconv.AppendInt(append(b, " -> "...), int64(l.code), 10)
	b = strconv.AppendFloat(append(b, " in "...), l.ms, 'f', 1, 64)
	return append(b, " ms"...)
}

func appendText(b []byte, s string) []byte { return append(b, s...) }

// flushingWriter buffers what is written to it and passes it on from a
// goroutine of its own: every logFlushEvery, as soon as flushAt bytes are
// waiting, and at Close. A request appends its line and goes on; one
// write(2) carries many lines. Only when flushLimit bytes are waiting (the
// output is slower than the log) does a writer wait to write them itself.
type flushingWriter struct {
	out   io.Writer
	mu    sync.Mutex // guards buf
	buf   []byte
	outMu sync.Mutex // one flush at a time; guards spare
	spare []byte
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

const (
	flushAt    = 64 << 10
	flushLimit = 1 << 20
)

// newFlushingWriter starts the writer's flush loop; Close stops it.
func newFlushingWriter(out io.Writer, every time.Duration) *flushingWriter {
	f := &flushingWriter{
		out: out, buf: make([]byte, 0, flushAt), spare: make([]byte, 0, flushAt),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go f.flushEvery(every)
	return f
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.buf = append(f.buf, p...)
	waiting := len(f.buf)
	f.mu.Unlock()
	switch {
	case waiting >= flushLimit:
		return len(p), f.flush()
	case waiting >= flushAt:
		select {
		case f.kick <- struct{}{}:
		default: // a flush is due already
		}
	}
	return len(p), nil
}

func (f *flushingWriter) flushEvery(every time.Duration) {
	defer close(f.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-f.kick:
		case <-f.stop:
			return
		}
		_ = f.flush() // a failing stdout has no better place to be reported
	}
}

// flush swaps the buffers and writes out the full one, so writers append
// to the other meanwhile.
func (f *flushingWriter) flush() error {
	f.outMu.Lock()
	defer f.outMu.Unlock()
	f.mu.Lock()
	full := f.buf
	f.buf = f.spare[:0]
	f.mu.Unlock()
	if len(full) == 0 {
		f.spare = full
		return nil
	}
	_, err := f.out.Write(full)
	f.spare = full[:0]
	return err
}

// Close stops the flush loop and writes out what is buffered.
func (f *flushingWriter) Close() error {
	close(f.stop)
	<-f.done
	return f.flush()
}

// minLevel drops records below level before they reach the wrapped handler.
type minLevel struct {
	slog.Handler
	level slog.Leveler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
