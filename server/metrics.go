package main

import (
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

// durationBuckets are OpenTelemetry's advised boundaries for
// http.server.request.duration, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// exemplarEvery is how often a histogram bucket's exemplar may be replaced.
// A bucket keeps only its latest exemplar and Prometheus reads it every few
// seconds, so offering one per request would cost a lot for nothing.
const exemplarEvery = 100 * time.Millisecond

// httpMetrics are the API's request metrics, with the names and labels
// OpenTelemetry's HTTP semantic conventions give them in Prometheus.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	active   atomic.Int64 // one atomic add, where a prometheus.Gauge would loop on a compare-and-swap
	series   sync.Map     // seriesKey -> *series
}

type seriesKey struct {
	method, route string
	code          int
}

// series is one label set of the duration histogram, looked up once, with
// the time each bucket last took an exemplar.
type series struct {
	observer   prometheus.Observer
	exemplarAt []atomic.Int64 // unix nanoseconds, by bucket
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests.",
		Buckets: durationBuckets,
	}, []string{"http_request_method", "http_route", "http_response_status_code"})}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "http_server_active_requests",
		Help: "Requests the API is handling now.",
	}, func() float64 { return float64(m.active.Load()) })
	reg.MustRegister(m.duration, active)
	return m
}

// observe records one request. The first request of a bucket in each
// exemplarEvery carries the trace and span IDs as an exemplar.
func (m *httpMetrics) observe(method, route string, code int, elapsed time.Duration, now time.Time, sc trace.SpanContext) {
	key := seriesKey{method, route, code}
	s, ok := m.series.Load(key)
	if !ok {
		s, _ = m.series.LoadOrStore(key, &series{
			observer:   m.duration.WithLabelValues(method, route, strconv.Itoa(code)),
			exemplarAt: make([]atomic.Int64, len(durationBuckets)+1),
		})
	}
	ser := s.(*series)
	seconds := elapsed.Seconds()
	bucket := &ser.exemplarAt[bucketIndex(seconds)]
	last, nowNs := bucket.Load(), now.UnixNano()
	if !sc.IsValid() || nowNs-last < int64(exemplarEvery) || !bucket.CompareAndSwap(last, nowNs) {
		ser.observer.Observe(seconds)
		return
	}
	ser.observer.(prometheus.ExemplarObserver).ObserveWithExemplar(seconds, prometheus.Labels{
		"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(),
	})
}

// bucketIndex is the histogram bucket seconds falls into (le semantics).
func bucketIndex(seconds float64) int {
	i, _ := slices.BinarySearch(durationBuckets, seconds)
	return i
}

// methodLabel keeps the method label bounded: any method HTTP does not
// define is "_OTHER", as the semantic conventions say.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return method
	}
	return "_OTHER"
}

// registerStateMetrics exposes the server's state as gauges.
func registerStateMetrics(reg prometheus.Registerer, st *status) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "status_server_flaky_mode",
			Help: "1 while flaky mode is on, else 0.",
		}, func() float64 {
			_, flaky := st.snapshot()
			return float64(boolToInt(flaky))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "status_server_configured_status_code",
			Help: "The code GET /status answers while flaky mode is off.",
		}, func() float64 {
			code, _ := st.snapshot()
			return float64(code)
		}),
	)
}

// newRegistry holds every metric the server exposes besides the request
// and state metrics: Go runtime, process, build and target information.
func newRegistry(res *resource.Resource) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		constGauge("status_server_build_info", "Always 1; the labels tell the server's version and Go version.",
			prometheus.Labels{"version": version, "go_version": runtime.Version()}),
		constGauge("target_info", "Target metadata", resourceLabels(res)),
	)
	return reg
}

func constGauge(name, help string, labels prometheus.Labels) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	g.Set(1)
	return g
}

// resourceLabels are the OpenTelemetry resource's attributes as Prometheus
// labels (service.name gives service_name), as OpenTelemetry's Prometheus
// exporter writes them in target_info.
func resourceLabels(res *resource.Resource) prometheus.Labels {
	namer := otlptranslator.LabelNamer{}
	labels := prometheus.Labels{}
	for _, kv := range res.Attributes() {
		if name, err := namer.Build(string(kv.Key)); err == nil {
			labels[name] = kv.Value.Emit()
		}
	}
	return labels
}

// metricsHandler serves the registry in the OpenMetrics format when the
// scraper asks for it: only that format carries exemplars.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Registry:          reg,
	}))
}

func boolToInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
