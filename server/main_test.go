package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

func (lr *lineReader) started(t *testing.T) (api string) {
	t.Helper()
	select {
	case m := <-lr.ready:
		return "http://" + m["addr"].(string)
	case <-time.After(10 * time.Second):
		t.Fatal("no start-up line within 10 s")
		return ""
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

// TestRunInProcess starts the whole program with run() on a free port and
// stops it by cancelling the context.
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	lines := readLines(pr)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, env(nil), pw)
	}()
	api := lines.started(t)

	if resp, body := do(t, "GET", api+"/status", nil); resp.StatusCode != 200 || body != "OK\n" {
		t.Fatalf("GET /status: %d %q", resp.StatusCode, body)
	}
	if err := healthcheck(t.Context(), strings.TrimPrefix(api, "http://")); err != nil {
		t.Fatalf("healthcheck of a running server: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5 s of cancellation")
	}
	if got := lines.messages(); got[len(got)-1] != "server stopped" {
		t.Errorf("last log line: %q", got[len(got)-1])
	}
	if err := healthcheck(t.Context(), strings.TrimPrefix(api, "http://")); err == nil {
		t.Error("healthcheck of a stopped server succeeded")
	}
}

// TestBinary builds the real binary, drives it over HTTP and stops it with
// SIGTERM: the process exits 0 within 5 s.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("bad flag exits 2", func(t *testing.T) {
		out, err := exec.Command(bin, "-max-delay", "-1s").CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "-max-delay") {
			t.Fatalf("exit %d, output %q; want 2 naming -max-delay", code, out)
		}
	})

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
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
	api := lines.started(t)

	if out, err := exec.Command(bin, "-healthcheck", "-addr", strings.TrimPrefix(api, "http://")).CombinedOutput(); err != nil {
		t.Fatalf("-healthcheck against a running server: %v %s", err, out)
	}

	if resp, body := do(t, "GET", api+"/status", nil); resp.StatusCode != 200 || body != "OK\n" {
		t.Fatalf("GET /status: %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
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

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
