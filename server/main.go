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
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	// shutdownGrace bounds how long in-flight requests may take to finish
	// after SIGTERM; Docker kills the process 10 s after it.
	shutdownGrace = 5 * time.Second
	// telemetryFlush bounds the final export of traces and logs.
	telemetryFlush = 3 * time.Second
)

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

	tel, err := newTelemetry(ctx, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stdout, cfg.logLevel, tel.logHandler())
	defer func() {
		// Telemetry that cannot be delivered is no reason to fail the exit.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlush)
		defer cancel()
		if err := tel.shutdown(flushCtx); err != nil {
			logger.Warn("telemetry not flushed at shutdown", slog.Any("error", err))
		}
	}()
	// The SDK reports export failures through this global hook; without it
	// they would go to stderr as plain text.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("telemetry error", slog.Any("error", err))
	}))

	seed := cfg.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	st := newStatus(cfg.flaky, cfg.delay, cfg.maxDelay, rand.New(rand.NewPCG(seed, seed)))
	if err := tel.registerStateMetrics(st); err != nil {
		return fmt.Errorf("state metrics: %w", err)
	}

	apiLn, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	metricsLn, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics listener: %w", err)
	}
	handler := newBareHandler(st)
	if cfg.telemetry {
		handler = newHandler(logger, st, tel)
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	api := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.delay + cfg.maxDelay + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errorLog,
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", tel.metricsHandler())
	metrics := &http.Server{
		Handler:           metricsMux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          errorLog,
	}

	logger.Info("server started",
		slog.String("addr", apiLn.Addr().String()),
		slog.String("metrics_addr", metricsLn.Addr().String()),
		slog.Bool("flaky", cfg.flaky),
		slog.Duration("delay", cfg.delay),
		slog.Duration("max_delay", cfg.maxDelay),
		slog.Bool("telemetry", cfg.telemetry),
		slog.Uint64("seed", seed),
		slog.String("version", version),
	)

	serveErr := make(chan error, 2)
	var wg sync.WaitGroup
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{api, apiLn}, {metrics, metricsLn}} {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		})
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down", slog.Duration("grace", shutdownGrace))
	case err = <-serveErr:
		logger.Error("serve failed, shutting down", slog.Any("error", err))
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	var shutdownErrs []error
	for _, srv := range []*http.Server{api, metrics} {
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			shutdownErrs = append(shutdownErrs, serr, srv.Close())
		}
	}
	wg.Wait()
	if serr := errors.Join(shutdownErrs...); serr != nil {
		logger.Warn("in-flight requests cut off at shutdown", slog.Any("error", serr))
	}
	logger.Info("server stopped")
	return err
}
