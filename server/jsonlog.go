package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// jsonHandler is a slog.Handler that writes each record as one JSON line with
// the keys of the exercise's original server: timestamp (UTC, RFC 3339),
// severity, message, the record's attributes, then trace_id and span_id when
// the context holds a span. Durations are written as text ("500ms"), errors
// as their message, attributes of a group as "group.key".
//
// It writes what slog.JSONHandler would, for the values this server logs, at
// a fraction of the cost: a line per request makes that cost count.
type jsonHandler struct {
	w     io.Writer // one Write per line; it must be safe for concurrent use
	level slog.Leveler
	attrs []byte // from WithAttrs, encoded: `,"key":value...`
	group string // from WithGroup: "name."
}

func newJSONHandler(w io.Writer, level slog.Leveler) *jsonHandler {
	return &jsonHandler{w: w, level: level}
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *jsonHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	bp := lineBuffers.Get().(*[]byte)
	b := appendJSONString(h.appendStart(*bp, r.Time, r.Level), r.Message)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	return h.writeLine(bp, appendTraceIDs(b, trace.SpanContextFromContext(ctx)))
}

// writeRequest writes what Handle would for line.record() with the line's
// span context, without building the record: a line per request makes
// that cost count.
func (h *jsonHandler) writeRequest(line requestLine) error {
	bp := lineBuffers.Get().(*[]byte)
	b := append(h.appendStart(*bp, line.time, line.level), '"')
	b = append(append(line.appendMessage(b, appendJSONChars), '"'), h.attrs...)
	b = appendJSONString(append(b, `,"method":`...), line.method)
	b = appendJSONString(append(b, `,"route":`...), line.route)
	b = appendJSONString(append(b, `,"path":`...), line.path)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(line.code), 10)
	b = appendFloat(append(b, `,"duration_ms":`...), line.ms)
	if line.interim != 0 {
		b = strconv.AppendInt(append(b, `,"interim_status":`...), int64(line.interim), 10)
	}
	return h.writeLine(bp, appendTraceIDs(b, line.sc))
}

// appendStart appends the line up to the message's value.
func (h *jsonHandler) appendStart(b []byte, t time.Time, level slog.Level) []byte {
	b = append(b[:0], `{"timestamp":"`...)
	b = append(t.UTC().AppendFormat(b, time.RFC3339Nano), `","severity":`...)
	b = appendJSONString(b, level.String())
	b = append(b, `,"message":`...)
	return b
}

func (h *jsonHandler) writeLine(bp *[]byte, b []byte) error {
	b = append(b, "}\n"...)
	_, err := h.w.Write(b)
	*bp = b
	lineBuffers.Put(bp)
	return err
}

func appendTraceIDs(b []byte, sc trace.SpanContext) []byte {
	if !sc.IsValid() {
		return b
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendHex(append(b, `,"trace_id":"`...), tid[:])
	b = appendHex(append(b, `","span_id":"`...), sid[:])
	return append(b, '"')
}

func (h *jsonHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		c.attrs = appendAttr(c.attrs, h.group, a)
	}
	return &c
}

func (h *jsonHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// appendAttr appends `,"key":value`, and a group's attributes one by one.
func appendAttr(b []byte, group string, a slog.Attr) []byte {
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value = a.Value.Resolve()
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, group, ga)
		}
		return b
	}
	if a.Key == "" && a.Equal(slog.Attr{}) {
		return b
	}
	key := a.Key
	if group != "" {
		key = group + key
	}
	b = appendJSONString(append(b, ','), key)
	return appendValue(append(b, ':'), a.Value)
}

func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return appendFloat(b, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendJSONString(b, v.Duration().String())
	case slog.KindTime:
		return appendJSONString(b, v.Time().Format(time.RFC3339Nano))
	}
	if err, ok := v.Any().(error); ok {
		return appendJSONString(b, err.Error())
	}
	if j, err := json.Marshal(v.Any()); err == nil {
		return append(b, j...)
	}
	return appendJSONString(b, fmt.Sprint(v.Any()))
}

// appendFloat writes f as encoding/json does; NaN and infinities, which
// JSON cannot hold, as strings.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// jsonSafe marks the bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\'
	}
	return safe
}()

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	return append(appendJSONChars(append(b, '"'), s), '"')
}

// appendJSONChars appends s escaped for a JSON string, without the quotes.
func appendJSONChars(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			start = i + size
		}
		i += size
	}
	return append(b, s[start:]...)
}

func appendHex(b []byte, id []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range id {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}
