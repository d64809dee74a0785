package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestMetricsExposeRequestsAndState(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	do(t, "GET", api.URL+"/status", nil)
	do(t, "POST", api.URL+"/status/503", nil)
	do(t, "GET", api.URL+"/status", nil)
	do(t, "POST", api.URL+"/flaky", nil)

	text := scrape(t, api.tel, "")
	for _, want := range []string{
		`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/status",le="0.005"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="503",http_route="/status"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="202",http_route="/status/{code}"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="202",http_route="/flaky"} 1`,
		"status_server_flaky_mode 1",
		"http_server_active_requests 0",
		"status_server_configured_status_code 503",
		`status_server_build_info{go_version="go`,
		`target_info{service_name="status-server"`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "server_address") || strings.Contains(text, "otel_scope") {
		t.Errorf("metrics carry labels they should not:\n%s", text)
	}

	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestExemplarsCarryTraceIDs checks the OpenMetrics exposition: only it
// carries exemplars, and they must link to the request's trace.
func TestExemplarsCarryTraceIDs(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequestWithContext(t.Context(), "GET", api.URL+"/status", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	text := scrape(t, api.tel, "application/openmetrics-text; version=1.0.0")
	// The exemplar's labels come in no fixed order.
	exemplar := regexp.MustCompile(`http_server_request_duration_seconds_bucket\{[^}]*http_route="/status"[^}]*\} 1 # \{([^}]*)\}`)
	match := exemplar.FindStringSubmatch(text)
	if match == nil || !strings.Contains(match[1], `trace_id="`+traceID+`"`) || !regexp.MustCompile(`span_id="[0-9a-f]{16}"`).MatchString(match[1]) {
		t.Errorf("no exemplar with trace %s in:\n%s", traceID, grep(text, "http_server_request_duration_seconds_bucket"))
	}
	if !strings.HasSuffix(text, "# EOF\n") {
		t.Errorf("not OpenMetrics: no # EOF")
	}
}

// TestSeriesStayBounded sends 10,000 requests with random paths, codes,
// methods and Host headers; none of them may create a series of its own.
func TestSeriesStayBounded(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	h := api.Config.Handler
	rng := rand.New(rand.NewPCG(1, 2))
	methods := []string{"GET", "POST", "PUT", "DELETE", "BREW", "X-RANDOM"}
	for i := range 10_000 {
		var path string
		switch i % 3 {
		case 0:
			path = fmt.Sprintf("/random/%d", rng.Int())
		case 1:
			path = fmt.Sprintf("/status/%d", rng.IntN(1000)-100)
		case 2:
			path = "/status"
		}
		req := httptest.NewRequest(methods[rng.IntN(len(methods))], path, nil)
		req.Host = fmt.Sprintf("host-%d.example:%d", rng.Int(), rng.IntN(65535))
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	series := 0
	for _, l := range strings.Split(scrape(t, api.tel, ""), "\n") {
		if strings.HasPrefix(l, "http_server_request_duration_seconds_count{") {
			series++
		}
	}
	// GET /status can answer any of the ~60 codes; everything else adds a
	// handful (methods x {400, 404, 405, 200, 202}).
	if limit := len(statusCodes) + 40; series > limit {
		t.Errorf("%d request duration series after 10,000 random requests, want at most %d:\n%s",
			series, limit, grep(scrape(t, api.tel, ""), "_count{"))
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLogHeadersNameTheTenantOnce: the exporter sets each header with
// Header.Set, so two keys that differ only in case would race for the
// value, map order deciding which tenant Loki sees.
func TestLogHeadersNameTheTenantOnce(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-scope-orgid=other,X-Extra=kept"}
	headers := logHeaders(func(k string) string { return env[k] }, "prod")
	var tenants []string
	for k, v := range headers {
		if strings.EqualFold(k, tenantHeader) {
			tenants = append(tenants, v)
		}
	}
	if len(tenants) != 1 || tenants[0] != "prod" || headers["X-Extra"] != "kept" {
		t.Errorf("logHeaders = %v, want one X-Scope-OrgID: prod, and X-Extra: kept", headers)
	}
}
