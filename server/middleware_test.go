package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestAbandonedRequestIs499 lets a real client give up on an answer the
// server delays: nothing was written, so the log line, the histogram and
// the span all say 499, and nothing says 200.
func TestAbandonedRequestIs499(t *testing.T) {
	api := newTestAPI(t, newStatus(false, 2*time.Second, 0, rand.New(rand.NewPCG(1, 1))))
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := client.Get(api.URL + "/status")
	var uerr *url.Error
	if !errors.As(err, &uerr) || !uerr.Timeout() {
		t.Fatalf("got %v, want the client to time out", err)
	}

	var line map[string]any
	waitFor(t, func() bool {
		lines := jsonLines(t, api.logs.String())
		if len(lines) == 0 {
			return false
		}
		line = lines[len(lines)-1]
		return true
	})
	if line["status"] != 499.0 || line["severity"] != "WARN" || line["message"] == nil ||
		!strings.HasPrefix(line["message"].(string), "GET /status -> 499 in ") {
		t.Errorf("log line: %v, want status 499 at WARN", line)
	}
	text := scrape(t, api.tel, "")
	if want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="499",http_route="/status"} 1`; !strings.Contains(text, want) {
		t.Errorf("metrics lack %s:\n%s", want, grep(text, "_count"))
	}
	if strings.Contains(text, `http_response_status_code="200"`) {
		t.Errorf("an abandoned request counted as 200:\n%s", grep(text, "_count"))
	}
	spans := api.spans.Ended()
	if len(spans) != 1 || attr(spans[0], "http.response.status_code") != attribute.IntValue(499) {
		t.Errorf("spans: %v, want one with http.response.status_code 499", spans)
	}
}

// TestSpansFollowHTTPConventions checks span names and attributes against
// OpenTelemetry's HTTP semantic conventions: "{method} {route}", the route
// in http.route, a server span joined to the caller's trace.
func TestSpansFollowHTTPConventions(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		method, path string
		name, route  string
		code         int
		status       codes.Code
	}{
		{"GET", "/status", "GET /status", "/status", 200, codes.Unset},
		{"POST", "/status/503", "POST /status/{code}", "/status/{code}", 202, codes.Unset},
		{"GET", "/status", "GET /status", "/status", 503, codes.Error},
		{"GET", "/nope", "GET", "", 404, codes.Unset},
		{"BREW", "/status", "HTTP", "", 405, codes.Unset},
	}
	for i, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), tt.method, api.URL+tt.path, nil)
		req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		spans := api.spans.Ended()
		if len(spans) != i+1 {
			t.Fatalf("%s %s: %d spans after %d requests", tt.method, tt.path, len(spans), i+1)
		}
		s := spans[i]
		if s.Name() != tt.name || s.SpanKind() != trace.SpanKindServer || s.Status().Code != tt.status {
			t.Errorf("%s %s: span %q kind %v status %v, want %q server %v", tt.method, tt.path, s.Name(), s.SpanKind(), s.Status().Code, tt.name, tt.status)
		}
		if s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID {
			t.Errorf("%s %s: trace %s parent %s, want %s %s", tt.method, tt.path, s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, parentID)
		}
		want := map[attribute.Key]attribute.Value{
			"http.response.status_code": attribute.IntValue(tt.code),
			"url.path":                  attribute.StringValue(tt.path),
			"url.scheme":                attribute.StringValue("http"),
			"network.protocol.version":  attribute.StringValue("1.1"),
			"server.address":            attribute.StringValue("127.0.0.1"),
			"client.address":            attribute.StringValue("127.0.0.1"),
			"http.route":                attribute.StringValue(tt.route),
			"http.request.method":       attribute.StringValue(methodLabel(tt.method)),
		}
		if tt.route == "" {
			want["http.route"] = attribute.Value{} // absent
		}
		if tt.method == "BREW" {
			want["http.request.method_original"] = attribute.StringValue("BREW")
		}
		for k, v := range want {
			if got := attr(s, k); got != v {
				t.Errorf("%s %s: %s = %v, want %v", tt.method, tt.path, k, got.Emit(), v.Emit())
			}
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestSpanContextWithoutExporter: with no span exported, a request still
// gets a span context of its own in the caller's trace, or in a new one.
func TestSpanContextWithoutExporter(t *testing.T) {
	tel, err := newTelemetry(t.Context(), env(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if tel.tracer != nil {
		t.Fatal("a tracer without an exporter")
	}
	req := httptest.NewRequest("GET", "/status", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	sc, span := tel.startSpan(req)
	if span != nil || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.SpanID().IsValid() ||
		sc.SpanID().String() == "00f067aa0ba902b7" || sc.IsSampled() {
		t.Errorf("joined span context: %+v, span %v", sc, span)
	}
	first, _ := tel.startSpan(httptest.NewRequest("GET", "/status", nil))
	second, _ := tel.startSpan(httptest.NewRequest("GET", "/status", nil))
	if !first.IsValid() || first.TraceID() == second.TraceID() {
		t.Errorf("new traces: %v and %v", first.TraceID(), second.TraceID())
	}
}

// TestRecordedStatus: what a request that wrote nothing is recorded as
// depends on who ended it.
func TestRecordedStatus(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(live)
	cancel()
	cutOff, cut := context.WithCancelCause(live)
	cut(errCutOff)
	tests := []struct {
		name string
		code int
		ctx  context.Context
		want int
	}{
		{"written", 418, gone, 418},
		{"nothing written, client gone", 0, gone, statusClientClosedRequest},
		{"nothing written, cut off at shutdown", 0, cutOff, http.StatusServiceUnavailable},
		{"nothing written, still connected", 0, live, http.StatusOK},
	}
	for _, tt := range tests {
		rec := &statusRecorder{code: tt.code}
		if got := rec.status(tt.ctx); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}
