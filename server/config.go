package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// config is the server's configuration, from flags with environment
// variables as fallbacks.
type config struct {
	addr        string
	metricsAddr string
	flaky       bool
	delay       time.Duration
	maxDelay    time.Duration
	seed        uint64
	logLevel    slog.Level
	telemetry   telemetryMode
	lokiTenant  string
	healthcheck bool
}

// telemetryMode is what -telemetry instruments the API with.
type telemetryMode string

const (
	telemetryOn  telemetryMode = "true"  // a span, the request histogram and a JSON log line per request
	telemetryOff telemetryMode = "false" // nothing: the bare handler
	// telemetrySlog is what a typical Go service does, one line per request
	// through log/slog's JSON handler, unbuffered; make bench compares with it.
	telemetrySlog telemetryMode = "slog"
)

func (m *telemetryMode) String() string { return string(*m) }

func (m *telemetryMode) Set(s string) error {
	if s == string(telemetrySlog) {
		*m = telemetrySlog
		return nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true, false or slog")
	}
	*m = telemetryOff
	if on {
		*m = telemetryOn
	}
	return nil
}

// durationFlag is a time.Duration flag whose errors say what is wrong:
// flag.Duration says "parse error" even for a number without its unit.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err == nil {
		*f.d = d
		return nil
	}
	if _, serr := time.ParseDuration(s + "s"); serr == nil { // a number as a duration writes it
		return fmt.Errorf("missing unit: write %sms or %ss", s, s)
	}
	return errors.New("not a duration: write a number and a unit, like 250ms, 1.5s or 1m")
}

// maxDelayFlag bounds -delay and -max-delay: an answer must not outlive the
// server's write timeout.
const maxDelayFlag = time.Minute

// configError is bad input on the command line or in the environment; main
// exits 2 for it.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// envVars maps each flag to the environment variable that sets it when the
// flag is not given.
var envVars = map[string]string{
	"addr":         "SERVER_ADDR",
	"metrics-addr": "SERVER_METRICS_ADDR",
	"flaky":        "SERVER_FLAKY",
	"delay":        "SERVER_DELAY",
	"max-delay":    "SERVER_MAX_DELAY",
	"seed":         "SERVER_SEED",
	"log-level":    "SERVER_LOG_LEVEL",
	"telemetry":    "SERVER_TELEMETRY",
	"loki-tenant":  "SERVER_LOKI_TENANT",
}

// parseConfig reads args and the environment. With -h it prints the usage to
// help and returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, help io.Writer) (config, error) {
	cfg := config{telemetry: telemetryOn}
	fs := newFlagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, help)
			return cfg, err
		}
		return cfg, configError{err}
	}
	if fs.NArg() > 0 {
		return cfg, configError{unexpectedArgument(fs, args)}
	}
	fromEnv, err := applyEnv(fs, getenv)
	if err != nil {
		return cfg, configError{err}
	}
	// Errors name where the value came from: "flag -addr" or
	// "SERVER_ADDR (flag -addr)".
	source := func(name string) string {
		if fromEnv[name] {
			return fmt.Sprintf("%s (flag -%s)", envVars[name], name)
		}
		return "flag -" + name
	}
	if err := cfg.validate(source); err != nil {
		return cfg, configError{err}
	}
	return cfg, nil
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage only on -h
	fs.Usage = func() {}     // the flag package calls it on errors too
	fs.StringVar(&cfg.addr, "addr", ":8080",
		"API listen `address`, host:port; the port is a number (0 picks a free one) or a service name like http")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", ":9090", "Prometheus /metrics listen `address`, as -addr")
	fs.BoolVar(&cfg.flaky, "flaky", false, "start in flaky mode (toggle at runtime with POST /flaky)")
	fs.Var(durationFlag{&cfg.delay}, "delay",
		"a fixed `duration` to wait before every GET /status answer, flaky or not (for measuring monitors)")
	cfg.maxDelay = 500 * time.Millisecond
	fs.Var(durationFlag{&cfg.maxDelay}, "max-delay",
		"in flaky mode, each GET /status waits a uniformly random time in [0, `duration`)")
	fs.Uint64Var(&cfg.seed, "seed", 0,
		"seed of the flaky draws; 0 picks one at random (it is logged at start-up, so a run can be replayed)")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "least severe `level` to log: debug, info, warn or error")
	fs.Var(&cfg.telemetry, "telemetry",
		"instrument the API: `mode` true (spans, request metrics and logs), false (none, to measure what they cost) "+
			"or slog (one plain log/slog line per request, to compare with)")
	fs.StringVar(&cfg.lokiTenant, "loki-tenant", "",
		"Loki `tenant` of the OTLP logs, sent as X-Scope-OrgID with each logs export (not with spans); "+
			"empty: none, Loki's tenant fake with auth_enabled: false")
	fs.BoolVar(&cfg.healthcheck, "healthcheck", false,
		"probe GET /healthz on -addr and exit 0 if it answers 200, else 1 (for container health checks)")
	return fs
}

// unexpectedArgument explains the first argument the flags left over. The
// usual one is a boolean flag's value given as the next argument
// ("-flaky false"), which the flag package leaves as an argument.
func unexpectedArgument(fs *flag.FlagSet, args []string) error {
	stray := fs.Arg(0)
	i := len(args) - fs.NArg()
	if i == 0 || args[i-1] == "--" {
		return fmt.Errorf("unexpected argument %q", stray)
	}
	prev := args[i-1]
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return fmt.Errorf("unexpected argument %q", stray)
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		if _, err := strconv.ParseBool(stray); err == nil {
			return fmt.Errorf("unexpected argument %q after %s: write %s=%s", stray, prev, prev, stray)
		}
	}
	return fmt.Errorf("unexpected argument %q", stray)
}

// applyEnv sets each flag the command line left alone from its environment
// variable, and returns the flags it set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) (map[string]bool, error) {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	fromEnv := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env, ok := envVars[f.Name]
		if !ok || onCommandLine[f.Name] || getenv(env) == "" {
			return
		}
		fromEnv[f.Name] = true
		if err := fs.Set(f.Name, getenv(env)); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s (flag -%s): %w", getenv(env), env, f.Name, err))
		}
	})
	return fromEnv, errors.Join(errs...)
}

func (c config) validate(source func(flag string) string) error {
	for _, f := range []struct{ name, addr string }{{"addr", c.addr}, {"metrics-addr", c.metricsAddr}} {
		if err := validateAddr(f.addr); err != nil {
			return fmt.Errorf("invalid value %q for %s: %w", f.addr, source(f.name), err)
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"delay", c.delay}, {"max-delay", c.maxDelay}} {
		if f.d < 0 || f.d > maxDelayFlag {
			return fmt.Errorf("invalid value %s for %s: must be between 0 and %s", f.d, source(f.name), maxDelayFlag)
		}
	}
	if c.lokiTenant != "" {
		if err := validateTenant(c.lokiTenant); err != nil {
			return fmt.Errorf("invalid value %q for %s: %w", c.lokiTenant, source("loki-tenant"), err)
		}
	}
	return nil
}

// maxTenantLen is the longest tenant ID Loki (as Mimir and Tempo) accepts.
const maxTenantLen = 150

// validateTenant applies Loki's tenant ID rules: at most 150 bytes of
// letters, digits and ! - _ . * ' ( ), and neither "." nor "..". So "|",
// which joins tenants in a multi-tenant query, is refused.
func validateTenant(id string) error {
	if len(id) > maxTenantLen {
		return fmt.Errorf("longer than Loki's %d characters", maxTenantLen)
	}
	if id == "." || id == ".." {
		return errors.New("not a Loki tenant ID")
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!-_.*'()", r)) {
			return fmt.Errorf("not a Loki tenant ID: %q is none of letters, digits and ! - _ . * ' ( )", r)
		}
	}
	return nil
}

// validateAddr accepts what net.Listen("tcp", addr) can bind: host:port,
// with a port from 1 to 65535, 0 for any free port, or a service name.
func validateAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return errors.New("no port")
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Errorf("port %d is not between 1 and 65535", n)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is neither a number nor a known service name", port)
	}
	return nil
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: server [flags]

The flaky status server: GET /status answers the configured status code,
POST /status/{code} sets it, POST /flaky toggles random codes and delays.
Prometheus metrics are served on a second listener at /metrics.

Each flag falls back to the environment variable named in brackets.
OTLP export of traces and logs follows the standard OTEL_EXPORTER_OTLP_*
variables (http/protobuf); with none set nothing is exported.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		if env, ok := envVars[f.Name]; ok {
			fmt.Fprintf(w, " [%s]", env)
		}
		fmt.Fprintln(w)
	})
}
