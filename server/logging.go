package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// newLogger writes JSON lines to stdout with the keys of the exercise's
// original server (timestamp, severity, message) plus trace_id and span_id
// when a span is active. When otlp is not nil, every record also goes there.
func newLogger(stdout io.Writer, level slog.Leveler, otlp slog.Handler) *slog.Logger {
	var h slog.Handler = traceIDs{slog.NewJSONHandler(stdout, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: renameKeys,
	})}
	if otlp != nil {
		h = slog.NewMultiHandler(h, minLevel{otlp, level})
	}
	return slog.New(h)
}

// renameKeys gives the top-level keys the original's names and writes
// durations as text ("500ms") rather than nanoseconds.
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

// traceIDs adds the active span's trace_id and span_id to each record.
type traceIDs struct{ slog.Handler }

func (h traceIDs) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceIDs) WithAttrs(as []slog.Attr) slog.Handler { return traceIDs{h.Handler.WithAttrs(as)} }
func (h traceIDs) WithGroup(name string) slog.Handler    { return traceIDs{h.Handler.WithGroup(name)} }

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
