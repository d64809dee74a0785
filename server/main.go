// Command server is a re-creation of the exercise's flaky status server:
// a small HTTP API whose answers can be set or randomised, instrumented with
// OpenTelemetry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// telemetryFlush bounds the final export of traces and logs.
const telemetryFlush = 3 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	var cfgErr configError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &cfgErr):
		fmt.Fprintf(os.Stderr, "server: %v\nRun 'server -h' for usage.\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	}
}

// run starts the API and metrics listeners and serves until ctx is done,
// then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	if cfg.healthcheck {
		return healthcheck(ctx, cfg.addr)
	}

	logs := newFlushingWriter(stdout, logFlushEvery)
	defer logs.Close()
	tel, err := newTelemetry(ctx, getenv, cfg.lokiTenant)
	if err != nil {
		return err
	}
	logger := newLogger(logs, cfg.logLevel, tel.logHandler())
	reportErrorsTo(logger)
	defer flushTelemetry(ctx, tel, logger)

	if cfg.seed == 0 {
		cfg.seed = rand.Uint64()
	}
	st := newStatus(cfg.flaky, cfg.delay, cfg.maxDelay, rand.New(rand.NewPCG(cfg.seed, cfg.seed)))
	registerStateMetrics(tel.registry, st)

	api := newAPIServer(cfg, apiHandler(cfg.telemetry, st, tel, logger, stdout), logger)
	metrics := newMetricsServer(metricsHandler(tel.registry), logger)
	return serve(ctx, cfg, logger, api, metrics)
}

// apiHandler is the API with the telemetry -telemetry asks for.
func apiHandler(mode telemetryMode, st *status, tel *telemetry, logger *slog.Logger, stdout io.Writer) http.Handler {
	switch mode {
	case telemetryOn:
		return newHandler(logger, st, tel)
	case telemetrySlog:
		return logEachRequest(slog.New(slog.NewJSONHandler(stdout, nil)), newBareHandler(st))
	}
	return newBareHandler(st)
}

// flushTelemetry exports what is left at exit. Telemetry that cannot be
// delivered is no reason to fail the exit: it is logged.
func flushTelemetry(ctx context.Context, tel *telemetry, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlush)
	defer cancel()
	if err := tel.shutdown(ctx); err != nil {
		logger.Warn("telemetry not flushed at shutdown", slog.Any("error", err))
	}
}
