package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
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

// flushingWriter buffers what is written to it and passes it on when the
// buffer is full, every logFlushEvery, and at Close: one write(2) for many
// log lines instead of one per line.
type flushingWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// newFlushingWriter starts the writer's flush loop; Close stops it.
func newFlushingWriter(w io.Writer, every time.Duration) *flushingWriter {
	f := &flushingWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go f.flushEvery(every)
	return f
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *flushingWriter) flushEvery(every time.Duration) {
	defer close(f.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = f.flush() // a failing stdout has no better place to be reported
		case <-f.stop:
			return
		}
	}
}

func (f *flushingWriter) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buf.Buffered() == 0 {
		return nil
	}
	return f.buf.Flush()
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
