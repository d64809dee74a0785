package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	// maxHeaderBytes bounds a request's line and headers together; a
	// request over it is answered 431.
	maxHeaderBytes = 16 << 10
	// headerSlack is what net/http reads beyond http.Server.MaxHeaderBytes
	// before it refuses a request.
	headerSlack = 4 << 10
	// shutdownGrace bounds how long in-flight requests may take to finish
	// after SIGTERM; Docker kills the process 10 s after it.
	shutdownGrace = 5 * time.Second
	// cutOffGrace is what a request cut off at the end of shutdownGrace gets
	// to send its 503 before its connection is closed.
	cutOffGrace = 500 * time.Millisecond
)

// errCutOff is the cause of a request's context when the server cuts the
// request off at shutdown: the server's doing, answered and recorded 503,
// where a client that went away is recorded 499.
var errCutOff = errors.New("request cut off at shutdown")

// newAPIServer bounds every phase of a request on the API listener, and
// gives an answer delayed by -delay and -max-delay the time to be written.
func newAPIServer(cfg config, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.delay + cfg.maxDelay + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes - headerSlack,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func newMetricsServer(h http.Handler, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// serve runs api on cfg.addr and metrics on cfg.metricsAddr until ctx is
// done or one of them fails, then shuts both down.
func serve(ctx context.Context, cfg config, logger *slog.Logger, api, metrics *http.Server) error {
	apiLn, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	metricsLn, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics listener: %w", err)
	}
	logger.Info("server started",
		slog.String("addr", apiLn.Addr().String()),
		slog.String("metrics_addr", metricsLn.Addr().String()),
		slog.Bool("flaky", cfg.flaky),
		slog.Duration("delay", cfg.delay),
		slog.Duration("max_delay", cfg.maxDelay),
		slog.String("telemetry", string(cfg.telemetry)),
		slog.Uint64("seed", cfg.seed),
		slog.String("version", version),
	)

	// The API's requests live in base, which outlives ctx by the grace
	// period: shutdown ends it with errCutOff.
	base, cutOff := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cutOff(nil)
	api.BaseContext = func(net.Listener) context.Context { return base }

	serveErr := make(chan error, 2)
	var wg sync.WaitGroup
	for srv, ln := range map[*http.Server]net.Listener{api: apiLn, metrics: metricsLn} {
		wg.Go(func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
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
	shutdown(ctx, logger, api, metrics, cutOff)
	wg.Wait()
	logger.Info("server stopped")
	return err
}

// shutdown stops the API, then the metrics listener, so the API's last
// requests can still be scraped. In-flight API requests get shutdownGrace
// to finish; those left are cut off: their contexts end with errCutOff,
// they answer 503, and cutOffGrace later their connections are closed.
func shutdown(ctx context.Context, logger *slog.Logger, api, metrics *http.Server, cutOff context.CancelCauseFunc) {
	ctx = context.WithoutCancel(ctx)
	grace, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	if err := api.Shutdown(grace); err != nil {
		cutOff(errCutOff)
		last, cancelLast := context.WithTimeout(ctx, cutOffGrace)
		defer cancelLast()
		if api.Shutdown(last) != nil {
			_ = api.Close()
		}
		logger.Warn("in-flight requests cut off at shutdown: answered 503", slog.Any("error", err))
	}
	last, cancelLast := context.WithTimeout(ctx, cutOffGrace)
	defer cancelLast()
	if err := metrics.Shutdown(last); err != nil {
		logger.Warn("metrics scrape cut off at shutdown", slog.Any("error", errors.Join(err, metrics.Close())))
	}
}
