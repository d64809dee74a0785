package main

import (
	"io"
	"log/slog"
	"time"
)

// newLogger writes JSON lines to stdout with the keys of the exercise's
// original server: timestamp, severity, message.
func newLogger(stdout io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: renameKeys,
	}))
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
