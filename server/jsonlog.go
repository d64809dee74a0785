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
	b := append((*bp)[:0], `{"timestamp":"`...)
	b = append(r.Time.UTC().AppendFormat(b, time.RFC3339Nano), `","severity":`...)
	b = appendJSONString(b, r.Level.String())
	b = appendJSONString(append(b, `,"message":`...), r.Message)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = appendHex(append(b, `,"trace_id":"`...), tid[:])
		b = appendHex(append(b, `","span_id":"`...), sid[:])
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	_, err := h.w.Write(b)
	*bp = b
	lineBuffers.Put(bp)
	return err
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
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
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
	b = appendJSONString(append(b, ','), group+a.Key)
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

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
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
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

func appendHex(b []byte, id []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range id {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}
