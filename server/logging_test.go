package main

import (
	"fmt"
	"net/http"
	"regexp"
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
