package main

import (
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
