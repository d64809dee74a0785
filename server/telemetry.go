package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

const (
	serviceName = "status-server"
	meterName   = "statuswatch/server"
)

// telemetry holds the OpenTelemetry providers. Metrics are always on and
// served for Prometheus; traces and logs leave the process over OTLP/HTTP
// only when the standard OTEL_EXPORTER_OTLP_* variables ask for it, so a
// plain start exports nothing and logs no export errors.
type telemetry struct {
	tracerProvider *sdktrace.TracerProvider
	meterProvider  *sdkmetric.MeterProvider
	loggerProvider *sdklog.LoggerProvider // nil without an OTLP logs endpoint
	propagator     propagation.TextMapPropagator
	registry       *prometheus.Registry
	activeRequests metric.Int64UpDownCounter
}

func newTelemetry(ctx context.Context, getenv func(string) string) (*telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	tel := &telemetry{
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:   prometheus.NewRegistry(),
	}

	tel.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(tel.registry),
		// Prometheus 3 would otherwise keep OpenTelemetry's dotted names.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	tracesOn, err := otlpEnabled(getenv, "TRACES")
	if err != nil {
		return nil, err
	}
	// Exemplars normally link to sampled spans only. With no trace exporter
	// no span is recorded, so every measurement may carry its (unsampled)
	// trace ID: the same ID is in the request's log line.
	exemplars := exemplar.TraceBasedFilter
	if !tracesOn {
		exemplars = exemplar.AlwaysOnFilter
	}
	tel.meterProvider = sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(boundedHTTPMetrics()...),
		sdkmetric.WithExemplarFilter(exemplars),
	)
	tel.activeRequests, err = tel.meterProvider.Meter(meterName).Int64UpDownCounter("http.server.active_requests",
		metric.WithUnit("{request}"), metric.WithDescription("Requests the API is handling now."))
	if err != nil {
		return nil, err
	}

	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if tracesOn {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
	} else {
		// Nothing would read a recorded span. Unsampled spans still have
		// IDs, which join a caller's traceparent and link logs and
		// exemplars, at a fraction of the cost.
		traceOpts = append(traceOpts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tel.tracerProvider = sdktrace.NewTracerProvider(traceOpts...)

	if on, err := otlpEnabled(getenv, "LOGS"); err != nil {
		return nil, err
	} else if on {
		exp, err := otlploghttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp log exporter: %w", err)
		}
		tel.loggerProvider = sdklog.NewLoggerProvider(
			sdklog.WithResource(res),
			sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)),
		)
	}
	return tel, nil
}

// boundedHTTPMetrics keeps otelhttp's request duration histogram to three
// bounded labels. Its default attributes include server.address, taken from
// the client's Host header: every new Host would make new series. The body
// size histograms are dropped; nothing here reads them.
//
// The SDK hands the attributes a view filters out to the exemplar
// reservoir, and the Prometheus exporter turns them into exemplar labels,
// which then exceed OpenMetrics' 128-rune limit and are dropped. Exemplars
// keep only their trace and span IDs.
func boundedHTTPMetrics() []sdkmetric.View {
	scope := func(name string) sdkmetric.Instrument {
		return sdkmetric.Instrument{Name: name, Scope: instrumentation.Scope{Name: otelhttp.ScopeName}}
	}
	return []sdkmetric.View{
		sdkmetric.NewView(scope("http.server.request.duration"), sdkmetric.Stream{
			AttributeFilter: attribute.NewAllowKeysFilter(
				semconv.HTTPRequestMethodKey, semconv.HTTPRouteKey, semconv.HTTPResponseStatusCodeKey,
			),
			ExemplarReservoirProviderSelector: func(agg sdkmetric.Aggregation) exemplar.ReservoirProvider {
				provider := sdkmetric.DefaultExemplarReservoirProviderSelector(agg)
				return func(attrs attribute.Set) exemplar.Reservoir {
					return withoutFilteredAttributes{provider(attrs)}
				}
			},
		}),
		sdkmetric.NewView(scope("http.server.*.body.size"), sdkmetric.Stream{
			Aggregation: sdkmetric.AggregationDrop{},
		}),
	}
}

type withoutFilteredAttributes struct{ exemplar.Reservoir }

func (r withoutFilteredAttributes) Offer(ctx context.Context, t time.Time, v exemplar.Value, _ []attribute.KeyValue) {
	r.Reservoir.Offer(ctx, t, v, nil)
}

// otlpEnabled reports whether OTLP export of signal ("TRACES" or "LOGS") is
// configured by the standard environment variables.
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
				return false, fmt.Errorf("%s=%q: only http/protobuf is supported", name, p)
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

// registerStateMetrics exposes the server's state as gauges.
func (t *telemetry) registerStateMetrics(st *status) error {
	meter := t.meterProvider.Meter(meterName)
	flaky, err := meter.Int64ObservableGauge("status_server.flaky_mode",
		metric.WithDescription("1 while flaky mode is on, else 0."))
	if err != nil {
		return err
	}
	code, err := meter.Int64ObservableGauge("status_server.configured_status_code",
		metric.WithDescription("The code GET /status answers while flaky mode is off."))
	if err != nil {
		return err
	}
	info, err := meter.Int64ObservableGauge("status_server.build_info",
		metric.WithDescription("Always 1; the labels tell the server's version and Go version."))
	if err != nil {
		return err
	}
	buildAttrs := metric.WithAttributes(attribute.String("version", version), attribute.String("go_version", runtime.Version()))
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c, f := st.snapshot()
		o.ObserveInt64(code, int64(c))
		o.ObserveInt64(flaky, boolToInt(f))
		o.ObserveInt64(info, 1, buildAttrs)
		return nil
	}, flaky, code, info)
	return err
}

// metricsHandler serves the registry in the OpenMetrics format when the
// scraper asks for it: only that format carries exemplars.
func (t *telemetry) metricsHandler() http.Handler {
	return promhttp.InstrumentMetricHandler(t.registry, promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Registry:          t.registry,
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
	errs := []error{t.tracerProvider.Shutdown(ctx), t.meterProvider.Shutdown(ctx)}
	if t.loggerProvider != nil {
		errs = append(errs, t.loggerProvider.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func boolToInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
