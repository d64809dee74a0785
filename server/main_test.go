package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collectorlogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// lineReader collects the JSON lines a server writes and finds the
// start-up line, which reports the addresses actually bound.
type lineReader struct {
	mu    sync.Mutex
	lines []map[string]any
	ready chan map[string]any
}

func readLines(r io.Reader) *lineReader {
	lr := &lineReader{ready: make(chan map[string]any, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			lr.mu.Lock()
			lr.lines = append(lr.lines, m)
			lr.mu.Unlock()
			if m["message"] == "server started" {
				lr.ready <- m
			}
		}
	}()
	return lr
}

func (lr *lineReader) started(t *testing.T) (api, metrics string) {
	t.Helper()
	select {
	case m := <-lr.ready:
		return "http://" + m["addr"].(string), "http://" + m["metrics_addr"].(string)
	case <-time.After(10 * time.Second):
		t.Fatal("no start-up line within 10 s")
		return "", ""
	}
}

func (lr *lineReader) messages() []string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	var out []string
	for _, l := range lr.lines {
		out = append(out, fmt.Sprint(l["message"]))
	}
	return out
}

// inProcess is run() started in this process on free ports.
type inProcess struct {
	api, metrics string
	lines        *lineReader
	cancel       context.CancelFunc
	done         chan error
}

func startRun(t *testing.T, getenv func(string) string, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	p := &inProcess{lines: readLines(pr), cancel: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0"}, args...), getenv, pw)
	}()
	p.api, p.metrics = p.lines.started(t)
	return p
}

// stop cancels run() and returns what it returned, failing after 5 s.
func (p *inProcess) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5 s of cancellation")
		return nil
	}
}

// TestRunInProcess starts the whole program with run() on free ports, uses
// both listeners and stops it by cancelling the context.
func TestRunInProcess(t *testing.T) {
	p := startRun(t, env(nil))
	api, metrics := p.api, p.metrics

	if resp, body := do(t, "GET", api+"/status", nil); resp.StatusCode != 200 || body != "OK\n" {
		t.Fatalf("GET /status: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", metrics+"/metrics", nil); resp.StatusCode != 200 || !strings.Contains(body, "status_server_flaky_mode 0") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	if err := healthcheck(t.Context(), strings.TrimPrefix(api, "http://")); err != nil {
		t.Fatalf("healthcheck of a running server: %v", err)
	}

	if err := p.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	waitFor(t, func() bool { // the reader may be a line behind
		got := p.lines.messages()
		return got[len(got)-1] == "server stopped"
	})
	if err := healthcheck(t.Context(), strings.TrimPrefix(api, "http://")); err == nil {
		t.Error("healthcheck of a stopped server succeeded")
	}
}

// TestRunWithoutTelemetry serves the same API with no request metrics or
// request log lines: what make bench compares the instrumented server with.
func TestRunWithoutTelemetry(t *testing.T) {
	p := startRun(t, env(nil), "-telemetry=false")
	api, metrics := p.api, p.metrics
	do(t, "POST", api+"/status/418", nil)
	if resp, body := do(t, "GET", api+"/status", nil); resp.StatusCode != 418 || body != "I'm a teapot\n" {
		t.Fatalf("GET /status: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "PUT", api+"/status", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT /status: %d", resp.StatusCode)
	}
	_, body := do(t, "GET", metrics+"/metrics", nil)
	if strings.Contains(body, "http_server_request_duration_seconds") || !strings.Contains(body, "status_server_configured_status_code 418") {
		t.Errorf("metrics without telemetry:\n%s", grep(body, "status"))
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, m := range p.lines.messages() {
		if strings.Contains(m, " -> ") {
			t.Fatal("a request log line without telemetry")
		}
	}
}

// TestRunWithPlainSlog serves the API behind one unbuffered log/slog JSON
// line per request and nothing else: make bench's yardstick.
func TestRunWithPlainSlog(t *testing.T) {
	p := startRun(t, env(nil), "-telemetry=slog")
	do(t, "GET", p.api+"/status", nil)
	_, body := do(t, "GET", p.metrics+"/metrics", nil)
	if strings.Contains(body, "http_server_request_duration_seconds") {
		t.Errorf("request metrics with -telemetry=slog:\n%s", grep(body, "http_server"))
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	p.lines.mu.Lock()
	defer p.lines.mu.Unlock()
	for _, l := range p.lines.lines {
		if l["msg"] == "request" && l["level"] == "INFO" && l["path"] == "/status" && l["status"] == 200.0 {
			return
		}
	}
	t.Errorf("no slog request line among %v", p.lines.lines)
}

// TestOTLPExport points the OTLP exporters at a local receiver and checks
// that the request's span and log line arrive, joined to the caller's trace.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var traces []*collectortrace.ExportTraceServiceRequest
	var logs []*collectorlogs.ExportLogsServiceRequest
	headers := map[string][]string{} // path: "tenant extra" of each export
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		headers[r.URL.Path] = append(headers[r.URL.Path], r.Header.Get("X-Scope-OrgID")+" "+r.Header.Get("X-Extra"))
		switch r.URL.Path {
		case "/v1/traces":
			m := &collectortrace.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(body, m); err != nil {
				t.Errorf("traces: %v", err)
			}
			traces = append(traces, m)
		case "/v1/logs":
			m := &collectorlogs.ExportLogsServiceRequest{}
			if err := proto.Unmarshal(body, m); err != nil {
				t.Errorf("logs: %v", err)
			}
			logs = append(logs, m)
		default:
			t.Errorf("unexpected OTLP path %s", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer receiver.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	// The tenant replaces the variable's X-Scope-OrgID on logs only, and keeps its other headers.
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Scope-OrgID=other, X-Extra=kept%20too")

	p := startRun(t, os.Getenv, "-loki-tenant", "prod")
	api := p.api

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequestWithContext(t.Context(), "GET", api+"/status", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := p.stop(t); err != nil { // shutdown flushes the batches
		t.Fatalf("run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var spanOK, logOK bool
	for _, tr := range traces {
		for _, rs := range tr.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if fmt.Sprintf("%x", s.TraceId) == traceID && s.Name == "GET /status" {
						spanOK = true
					}
				}
			}
		}
	}
	for _, l := range logs {
		for _, rl := range l.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, r := range sl.LogRecords {
					if fmt.Sprintf("%x", r.TraceId) == traceID && strings.HasPrefix(r.Body.GetStringValue(), "GET /status -> 200 in ") {
						logOK = true
					}
				}
			}
		}
	}
	if !spanOK {
		t.Errorf("no span GET /status in trace %s among %d trace exports", traceID, len(traces))
	}
	if !logOK {
		t.Errorf("no request log record in trace %s among %d log exports", traceID, len(logs))
	}
	for path, want := range map[string]string{"/v1/logs": "prod kept too", "/v1/traces": "other kept too"} {
		for _, got := range headers[path] {
			if got != want {
				t.Errorf("%s: got X-Scope-OrgID and X-Extra %q, want %q", path, got, want)
			}
		}
	}
}

// TestUndeliverableTelemetryIsLoggedNotFatal points OTLP at a closed port:
// shutdown logs what it could not flush and run still returns nil.
func TestUndeliverableTelemetryIsLoggedNotFatal(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", closed.URL)
	p := startRun(t, os.Getenv)
	do(t, "GET", p.api+"/status", nil)
	if err := p.stop(t); err != nil {
		t.Fatalf("run: %v, want nil", err)
	}
	waitFor(t, func() bool { return slices.Contains(p.lines.messages(), "telemetry not flushed at shutdown") })
}

// TestBinary builds the real binary, drives it over HTTP and stops it with
// SIGTERM while a request is in flight: the request completes and the
// process exits 0 within 5 s.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("bad value exits 2", func(t *testing.T) {
		for _, tt := range []struct {
			args, env []string
			want      string
		}{
			{[]string{"-max-delay", "-1s"}, nil, "flag -max-delay"},
			{[]string{"-addr", ":99999"}, nil, "flag -addr"},
			{nil, []string{"SERVER_METRICS_ADDR=:abc"}, "SERVER_METRICS_ADDR (flag -metrics-addr)"},
			{nil, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		} {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if code := exitCode(err); code != 2 || !strings.Contains(string(out), tt.want) {
				t.Errorf("%v %v: exit %d, output %q; want 2 naming %s", tt.args, tt.env, code, out, tt.want)
			}
		}
	})

	// Find a seed whose first flaky draw waits long enough to be in flight
	// when SIGTERM arrives.
	const maxDelay = time.Second
	var seed uint64
	var delay time.Duration
	for seed = 1; delay < 600*time.Millisecond; seed++ {
		_, delay = seededStatus(true, maxDelay, seed).answer()
	}
	seed--

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0",
		"-flaky", "-max-delay", maxDelay.String(), "-seed", fmt.Sprint(seed))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := readLines(stdout)
	api, metrics := lines.started(t)

	if out, err := exec.Command(bin, "-healthcheck", "-addr", strings.TrimPrefix(api, "http://")).CombinedOutput(); err != nil {
		t.Fatalf("-healthcheck against a running server: %v %s", err, out)
	}

	inflight := make(chan error, 1)
	go func() {
		resp, err := http.Get(api + "/status")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		inflight <- err
	}()
	waitFor(t, func() bool { // it waits its drawn delay of over 600 ms
		_, body := do(t, "GET", metrics+"/metrics", nil)
		return strings.Contains(body, "\nhttp_server_active_requests 1\n")
	})
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-inflight; err != nil {
		t.Errorf("in-flight request failed at shutdown: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM")
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))

	out, err := exec.Command(bin, "-healthcheck", "-addr", strings.TrimPrefix(api, "http://")).CombinedOutput()
	if exitCode(err) != 1 {
		t.Fatalf("-healthcheck against a stopped server: exit %d %s, want 1", exitCode(err), out)
	}
}

// waitFor polls cond until it holds, for at most 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
