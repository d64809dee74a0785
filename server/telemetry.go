package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	serviceName = "status-server"
	scopeName   = "statuswatch/server"
)

// telemetry holds what the server reports with. Metrics are always on and
// served for Prometheus by prometheus/client_golang. Traces and logs leave
// the process over OTLP/HTTP only when the standard OTEL_EXPORTER_OTLP_*
// variables ask for it, so a plain start exports nothing and logs no export
// errors.
type telemetry struct {
	registry       *prometheus.Registry
	http           *httpMetrics
	tracerProvider *sdktrace.TracerProvider // nil without an OTLP traces endpoint
	tracer         trace.Tracer             // nil without an OTLP traces endpoint
	propagator     propagation.TextMapPropagator
	propagated     []string               // the propagator's header names, canonical
	loggerProvider *sdklog.LoggerProvider // nil without an OTLP logs endpoint
}

// lokiTenant, when not empty, is sent as X-Scope-OrgID with every logs export.
func newTelemetry(ctx context.Context, getenv func(string) string, lokiTenant string) (*telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	tel := &telemetry{
		registry:   newRegistry(res),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, f := range tel.propagator.Fields() {
		tel.propagated = append(tel.propagated, http.CanonicalHeaderKey(f))
	}
	tel.http = newHTTPMetrics(tel.registry)
	if tel.tracerProvider, err = newTracerProvider(ctx, getenv, res); err != nil {
		return nil, err
	}
	if tel.tracerProvider != nil {
		tel.tracer = tel.tracerProvider.Tracer(scopeName)
	}
	if tel.loggerProvider, err = newLoggerProvider(ctx, getenv, res, lokiTenant); err != nil {
		return nil, err
	}
	return tel, nil
}

// newTracerProvider exports spans when OTLP traces are configured, else it
// returns nil: nothing would read a recorded span.
func newTracerProvider(ctx context.Context, getenv func(string) string, res *resource.Resource) (*sdktrace.TracerProvider, error) {
	on, err := otlpEnabled(getenv, "TRACES")
	if err != nil || !on {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithIDGenerator(fastIDs{}), sdktrace.WithBatcher(exp)), nil
}

// startSpan starts the request's server span, joined to the caller's
// trace, and returns its span context. The span is nil when no span is
// exported: then only the span context is made up, the caller's trace ID
// (or a new one) and a new span ID, for the log line and the exemplar. The
// SDK would do more work for a span nobody reads.
func (t *telemetry) startSpan(r *http.Request) (trace.SpanContext, trace.Span) {
	ctx := r.Context()
	if slices.ContainsFunc(t.propagated, func(h string) bool { return len(r.Header[h]) > 0 }) {
		ctx = t.propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)) // looking costs allocations
	}
	if t.tracer != nil {
		_, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		return span.SpanContext(), span
	}
	parent := trace.SpanContextFromContext(ctx)
	traceID := parent.TraceID()
	if !traceID.IsValid() {
		traceID = newTraceID()
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    traceID,
		SpanID:     newSpanID(),
		TraceState: parent.TraceState(),
	}), nil
}

// fastIDs draws trace and span IDs from math/rand/v2's per-thread
// generator. The SDK's default shares one generator behind a mutex, which
// every request on every core waits for.
type fastIDs struct{}

func (fastIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return newTraceID(), newSpanID()
}

func (fastIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// newLoggerProvider ships log records when OTLP logs are configured, else
// it returns nil. With a tenant, every export names it to Loki.
func newLoggerProvider(ctx context.Context, getenv func(string) string, res *resource.Resource, tenant string) (*sdklog.LoggerProvider, error) {
	on, err := otlpEnabled(getenv, "LOGS")
	if err != nil || !on {
		return nil, err
	}
	var opts []otlploghttp.Option
	if tenant != "" {
		opts = append(opts, otlploghttp.WithHeaders(logHeaders(getenv, tenant)))
	}
	exp, err := otlploghttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp log exporter: %w", err)
	}
	return sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp))), nil
}

// tenantHeader names the Loki tenant of a request.
const tenantHeader = "X-Scope-OrgID"

// logHeaders are the headers of the logs exporter with the tenant's. The
// exporter's WithHeaders replaces those of OTEL_EXPORTER_OTLP_LOGS_HEADERS
// (or else OTEL_EXPORTER_OTLP_HEADERS), so they are read here as the
// exporter reads them ("k1=v1,k2=v2", values URL-encoded) and kept; the
// tenant wins over an X-Scope-OrgID among them. A malformed pair is left
// out, as the exporter leaves it out.
func logHeaders(getenv func(string) string, tenant string) map[string]string {
	raw := getenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS")
	if raw == "" {
		raw = getenv("OTEL_EXPORTER_OTLP_HEADERS")
	}
	headers := map[string]string{}
	for pair := range strings.SplitSeq(raw, ",") {
		key, value, ok := strings.Cut(pair, "=")
		key = strings.TrimSpace(key)
		if value, err := url.PathUnescape(value); ok && err == nil && key != "" {
			headers[http.CanonicalHeaderKey(key)] = strings.TrimSpace(value)
		}
	}
	headers[http.CanonicalHeaderKey(tenantHeader)] = tenant // canonical, as the keys above: one entry
	return headers
}

// otlpEnabled reports whether OTLP export of signal ("TRACES" or "LOGS") is
// configured by the standard environment variables. A protocol it cannot
// speak is a configError.
func otlpEnabled(getenv func(string) string, signal string) (bool, error) {
	if getenv("OTEL_SDK_DISABLED") == "true" || getenv("OTEL_"+signal+"_EXPORTER") == "none" {
		return false, nil
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == "" {
		return false, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(name); p != "" {
			if p != "http/protobuf" {
				return false, configError{fmt.Errorf("%s=%q: only http/protobuf is supported", name, p)}
			}
			break
		}
	}
	return true, nil
}

// reportErrorsTo sends the errors the OpenTelemetry SDK reports (failed
// exports) to logger; without it they would go to stderr as plain text.
func reportErrorsTo(logger *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("telemetry error", slog.Any("error", err))
	}))
}

// logHandler returns the handler that ships log records over OTLP, or nil.
func (t *telemetry) logHandler() slog.Handler {
	if t.loggerProvider == nil {
		return nil
	}
	return otelslog.NewHandler(serviceName, otelslog.WithLoggerProvider(t.loggerProvider))
}

// shutdown flushes and stops every provider.
func (t *telemetry) shutdown(ctx context.Context) error {
	var errs []error
	if t.tracerProvider != nil {
		errs = append(errs, t.tracerProvider.Shutdown(ctx))
	}
	if t.loggerProvider != nil {
		errs = append(errs, t.loggerProvider.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
