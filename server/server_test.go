package main

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// TestShutdownCutOffIs503 runs serve() with the real grace period and a
// request that waits longer than it: the server cuts the request off, so
// the client, the log line, the histogram and the span say 503 (the
// server's doing, counted by the request-availability SLO), not 499 (the
// client's). The metrics listener still answers during the grace period.
func TestShutdownCutOffIs503(t *testing.T) {
	api := newTestAPI(t, newStatus(false, 30*time.Second, 0, rand.New(rand.NewPCG(1, 1))))
	api.Close() // only its handler and telemetry are used, behind serve()
	pr, pw := io.Pipe()
	lines := readLines(pr)
	logger := newLogger(pw, slog.LevelInfo, nil)
	cfg := config{addr: "127.0.0.1:0", metricsAddr: "127.0.0.1:0", delay: 30 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, cfg, logger, newAPIServer(cfg, api.Config.Handler, logger),
			newMetricsServer(metricsHandler(api.tel.registry), logger))
	}()
	apiURL, metricsURL := lines.started(t)

	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(apiURL + "/status")
		if err != nil {
			t.Logf("GET /status: %v", err)
			close(answered)
			return
		}
		resp.Body.Close()
		answered <- resp
	}()
	waitFor(t, func() bool { return api.tel.http.active.Load() == 1 })
	start := time.Now()
	cancel()
	time.Sleep(100 * time.Millisecond) // within the grace period
	if resp, body := do(t, "GET", metricsURL+"/metrics", nil); resp.StatusCode != 200 ||
		!strings.Contains(body, "\nhttp_server_active_requests 1\n") {
		t.Errorf("metrics during the grace period: %d\n%s", resp.StatusCode, grep(body, "active"))
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(shutdownGrace + 10*time.Second):
		t.Fatal("serve did not return after the grace period")
	}
	if took := time.Since(start); took < shutdownGrace {
		t.Errorf("serve returned %s after cancellation, before the %s grace period", took, shutdownGrace)
	}
	if resp := <-answered; resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("client got %v, want 503", resp)
	}

	var line map[string]any
	for _, l := range jsonLines(t, api.logs.String()) {
		if l["route"] == "/status" {
			line = l
		}
	}
	if line["status"] != 503.0 || line["severity"] != "ERROR" || !strings.HasPrefix(line["message"].(string), "GET /status -> 503 in ") {
		t.Errorf("log line: %v, want status 503 at ERROR", line)
	}
	text := scrape(t, api.tel, "")
	if want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="503",http_route="/status"} 1`; !strings.Contains(text, want) {
		t.Errorf("metrics lack %s:\n%s", want, grep(text, "_count"))
	}
	spans := api.spans.Ended()
	if len(spans) != 1 || attr(spans[0], "http.response.status_code") != attribute.IntValue(503) || spans[0].Status().Code != codes.Error {
		t.Errorf("spans: %v, want one with http.response.status_code 503 and status error", spans)
	}
}
