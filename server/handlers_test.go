package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoutesAndMethods(t *testing.T) {
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
	routes := []struct {
		path  string
		allow string         // the Allow header of a 405
		want  map[string]int // method -> code; others must be 405
	}{
		{"/status", "GET, HEAD", map[string]int{"GET": 200, "HEAD": 200}},
		{"/status/200", "POST", map[string]int{"POST": 200}},
		{"/status/503", "POST", map[string]int{"POST": 202}},
		{"/flaky", "GET, HEAD, POST", map[string]int{"GET": 200, "HEAD": 200, "POST": 202}},
		{"/healthz", "GET, HEAD", map[string]int{"GET": 200, "HEAD": 200}},
	}
	for _, rt := range routes {
		for _, m := range methods {
			t.Run(m+" "+rt.path, func(t *testing.T) {
				api := newTestAPI(t, seededStatus(false, 0, 1))
				resp, _ := do(t, m, api.URL+rt.path, nil)
				want, ok := rt.want[m]
				if !ok {
					want = http.StatusMethodNotAllowed
				}
				if resp.StatusCode != want {
					t.Fatalf("got %d, want %d", resp.StatusCode, want)
				}
				if want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != rt.allow {
					t.Errorf("Allow: got %q, want %q", resp.Header.Get("Allow"), rt.allow)
				}
			})
		}
	}
	for _, path := range []string{"/", "/nope", "/status/", "/status/200/x", "/statusx", "/metrics"} {
		for _, m := range methods {
			t.Run(m+" "+path, func(t *testing.T) {
				api := newTestAPI(t, seededStatus(false, 0, 1))
				if resp, _ := do(t, m, api.URL+path, nil); resp.StatusCode != http.StatusNotFound {
					t.Fatalf("got %d, want 404", resp.StatusCode)
				}
			})
		}
	}
}

func TestSetStatus(t *testing.T) {
	tests := []struct {
		code     string
		want     int
		wantBody string
	}{
		{"503", 202, `{"code":503,"changed":true}`},
		{"200", 200, `{"code":200,"changed":false}`},
		{"418", 202, `{"code":418,"changed":true}`},
		{"425", 202, `{"code":425,"changed":true}`}, // Too Early, missing from the first hand-written list
		{"599", 400, "status code 599 is not one of Go's named status codes"},
		{"600", 400, "status code 600 is not one of Go's named status codes"},
		{"abc", 400, `status code "abc" is not a plain decimal number like 503`},
		{"999", 400, "status code 999 is not one of Go's named status codes"},
		{"-1", 400, `status code "-1" is not a plain decimal number like 503`},
		{"306", 400, "status code 306 is not one of Go's named status codes"},
		{"1e3", 400, `status code "1e3" is not a plain decimal number like 503`},
		{"+204", 400, `status code "+204" is not a plain decimal number like 503`},
		{"0200", 400, `status code "0200" is not a plain decimal number like 503`},
		{"%20200", 400, `status code " 200" is not a plain decimal number like 503`},
		{"99999999999999999999", 400, "status code 99999999999999999999 is not one of Go's named status codes"},
		{strings.Repeat("9", 100), 400, "status code " + strings.Repeat("9", 32) + "... is not one of Go's named status codes"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			api := newTestAPI(t, seededStatus(false, 0, 1))
			resp, body := do(t, "POST", api.URL+"/status/"+tt.code, nil)
			if resp.StatusCode != tt.want || strings.TrimSpace(body) != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.want, tt.wantBody)
			}
			code, _ := api.st.snapshot()
			if wantCode := map[bool]string{true: tt.code, false: "200"}[tt.want != 400]; fmt.Sprint(code) != wantCode {
				t.Errorf("configured code: got %d, want %s", code, wantCode)
			}
		})
	}
}

// TestCodesAreGos: the accepted codes are exactly those Go names, 62 of
// them in Go 1.26, which the docs count.
func TestCodesAreGos(t *testing.T) {
	if len(statusCodes) != 62 || !slices.Contains(statusCodes, 425) {
		t.Errorf("%d codes, want Go's 62 with 425: %v", len(statusCodes), statusCodes)
	}
	for code := range 1000 {
		if knownCode(code) != slices.Contains(statusCodes, code) || knownCode(code) != (http.StatusText(code) != "") {
			t.Errorf("%d: knownCode %v, listed %v, StatusText %q", code, knownCode(code), slices.Contains(statusCodes, code), http.StatusText(code))
		}
	}
}

func TestGetStatusAnswersEveryCode(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	for _, code := range statusCodes {
		if code < 200 {
			continue // no final answer: see TestInformationalCodes
		}
		do(t, "POST", fmt.Sprintf("%s/status/%d", api.URL, code), nil)
		resp, body := do(t, "GET", api.URL+"/status", nil)
		wantBody := http.StatusText(code) + "\n"
		if !bodyAllowed(code) {
			wantBody = ""
		}
		if resp.StatusCode != code || body != wantBody {
			t.Errorf("GET /status after setting %d: got %d %q, want %d %q", code, resp.StatusCode, body, code, wantBody)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%d: Cache-Control: got %q, want no-store", code, cc)
		}
	}
}

// TestInformationalCodes reads the raw bytes on the wire: a 1xx is no final
// answer, so Go sends 100, 102 and 103 as interim responses before an empty
// 200, and 101 as a final one. Each has no body and closes the connection, so
// a keep-alive client cannot read it as the answer to a later request.
func TestInformationalCodes(t *testing.T) {
	for _, tt := range []struct {
		code      int
		wantLines []string // status lines in order
	}{
		{100, []string{"HTTP/1.1 100 Continue", "HTTP/1.1 200 OK"}},
		{101, []string{"HTTP/1.1 101 Switching Protocols"}},
		{102, []string{"HTTP/1.1 102 Processing", "HTTP/1.1 200 OK"}},
		{103, []string{"HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK"}},
	} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			api := newTestAPI(t, seededStatus(false, 0, 1))
			do(t, "POST", fmt.Sprintf("%s/status/%d", api.URL, tt.code), nil)

			conn := dialRaw(t, api)
			fmt.Fprint(conn, "GET /status HTTP/1.1\r\nHost: test\r\n\r\n")
			raw, err := readAll(conn)
			if err != nil {
				t.Fatalf("reading until the server closes: %v (got %q)", err, raw)
			}
			var statusLines []string
			for _, l := range strings.Split(raw, "\r\n") {
				if strings.HasPrefix(l, "HTTP/1.1 ") {
					statusLines = append(statusLines, l)
				}
			}
			if fmt.Sprint(statusLines) != fmt.Sprint(tt.wantLines) {
				t.Errorf("status lines: got %q, want %q", statusLines, tt.wantLines)
			}
			if !strings.HasSuffix(raw, "\r\n\r\n") {
				t.Errorf("answer does not end after its headers (a body was sent): %q", raw)
			}
			if !strings.Contains(raw, "Connection: close") {
				t.Errorf("no Connection: close in %q", raw)
			}
			logs := jsonLines(t, api.logs.String())
			last := logs[len(logs)-1]
			wantStatus, wantInterim := float64(200), float64(tt.code)
			if tt.code == 101 {
				wantStatus, wantInterim = 101, 0
			}
			if last["status"] != wantStatus || (wantInterim != 0 && last["interim_status"] != wantInterim) {
				t.Errorf("log line: got status %v interim %v, want %v %v", last["status"], last["interim_status"], wantStatus, wantInterim)
			}
		})
	}
}

// dialRaw opens a plain TCP connection to the API, for writing and reading
// HTTP by hand; it is closed at the end of the test.
func dialRaw(t *testing.T, api *testAPI) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", api.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn
}

// readAll reads from conn until the server closes it.
func readAll(conn net.Conn) (string, error) {
	var sb strings.Builder
	r := bufio.NewReader(conn)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return sb.String(), nil
		}
		if err != nil {
			return sb.String(), err
		}
	}
}

func TestFlakyToggleTellsTheNewState(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	for _, want := range []bool{true, false, true} {
		resp, body := do(t, "POST", api.URL+"/flaky", nil)
		wantBody := fmt.Sprintf(`{"flaky":%t}`, want)
		if resp.StatusCode != http.StatusAccepted || strings.TrimSpace(body) != wantBody || resp.Header.Get("X-Flaky") != fmt.Sprint(want) {
			t.Fatalf("POST /flaky: got %d %q X-Flaky=%q, want 202 %s X-Flaky=%t",
				resp.StatusCode, body, resp.Header.Get("X-Flaky"), wantBody, want)
		}
		resp, body = do(t, "GET", api.URL+"/flaky", nil)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != wantBody {
			t.Fatalf("GET /flaky: got %d %q, want 200 %s", resp.StatusCode, body, wantBody)
		}
	}
}

// TestFlakyOffRestoresConfiguredCode guards against the original's bug: its
// random draws overwrote the configured code.
func TestFlakyOffRestoresConfiguredCode(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	do(t, "POST", api.URL+"/status/418", nil)
	do(t, "POST", api.URL+"/flaky", nil)
	for range 20 {
		do(t, "GET", api.URL+"/status", nil)
	}
	do(t, "POST", api.URL+"/flaky", nil)
	if resp, _ := do(t, "GET", api.URL+"/status", nil); resp.StatusCode != 418 {
		t.Fatalf("after flaky off: got %d, want the configured 418", resp.StatusCode)
	}
}

// TestFlakySequenceIsReproducible checks that HTTP answers follow the seeded
// draws one for one (no off-by-one as in the original) and wait their delay.
func TestFlakySequenceIsReproducible(t *testing.T) {
	const seed, maxDelay = 42, 30 * time.Millisecond
	api := newTestAPI(t, seededStatus(true, maxDelay, seed))
	replica := seededStatus(true, maxDelay, seed)
	for i := range 20 {
		wantCode, wantDelay := replica.answer()
		start := time.Now()
		resp, _ := do(t, "GET", api.URL+"/status", nil)
		took := time.Since(start)
		gotCode := resp.StatusCode
		if wantCode < 200 && wantCode != 101 {
			gotCode = wantCode // Go's client skips interim answers; the log says what was sent
			if last := jsonLines(t, api.logs.String()); last[len(last)-1]["interim_status"] != float64(wantCode) {
				t.Fatalf("request %d: log %v, want interim_status %d", i, last[len(last)-1], wantCode)
			}
		}
		if gotCode != wantCode {
			t.Fatalf("request %d: got %d, want %d", i, gotCode, wantCode)
		}
		if took < wantDelay {
			t.Errorf("request %d took %s, less than its drawn delay %s", i, took, wantDelay)
		}
	}
}

// TestBodies sends bodies of every kind to POST /flaky over a raw
// connection: each is read whole through the 64 KiB limit before the state
// changes, so only an acceptable one toggles flaky mode.
func TestBodies(t *testing.T) {
	chunked := func(chunks ...string) string {
		var sb strings.Builder
		sb.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for _, c := range chunks {
			fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(c), c)
		}
		sb.WriteString("0\r\n\r\n")
		return sb.String()
	}
	sized := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	fill := strings.Repeat("y", 4096)
	tests := []struct {
		name        string
		headersBody string
		want        int
	}{
		{"small body, ignored as the original did", sized("hello"), http.StatusAccepted},
		{"body of exactly 64 KiB", sized(strings.Repeat("y", maxBodyBytes)), http.StatusAccepted},
		{"declared over 64 KiB", sized(strings.Repeat("y", maxBodyBytes+1)), http.StatusRequestEntityTooLarge},
		{"small chunked body", chunked("hello", "world"), http.StatusAccepted},
		{"chunked over 64 KiB", chunked(slices.Repeat([]string{fill}, 17)...), http.StatusRequestEntityTooLarge},
		{"malformed chunk size", "Transfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n", http.StatusBadRequest},
		{"chunk longer than its size", "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newTestAPI(t, seededStatus(false, 0, 1))
			conn := dialRaw(t, api)
			fmt.Fprintf(conn, "POST /flaky HTTP/1.1\r\nHost: test\r\n%s", tt.headersBody)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if _, flaky := api.st.snapshot(); flaky != (tt.want == http.StatusAccepted) {
				t.Errorf("answered %d and left flaky mode %v", resp.StatusCode, flaky)
			}
			if resp, _ := do(t, "GET", api.URL+"/healthz", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("afterwards: /healthz %d", resp.StatusCode)
			}
		})
	}
}

// TestHeaderLimit holds the API server to its promise: a request line and
// headers of up to 16 KiB together are read, one byte more is refused 431.
func TestHeaderLimit(t *testing.T) {
	st := seededStatus(false, 0, 1)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = newAPIServer(config{}, newBareHandler(st), slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	api := &testAPI{Server: srv, st: st}
	for _, tt := range []struct {
		size int
		want int
	}{{maxHeaderBytes, http.StatusOK}, {maxHeaderBytes + 1, http.StatusRequestHeaderFieldsTooLarge}} {
		head := "GET /status HTTP/1.1\r\nHost: test\r\nX-Fill: "
		const end = "\r\n\r\n"
		req := head + strings.Repeat("x", tt.size-len(head)-len(end)) + end
		conn := dialRaw(t, api)
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", len(req), err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("request line and headers of %d bytes: got %d, want %d", len(req), resp.StatusCode, tt.want)
		}
	}
}
