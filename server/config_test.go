package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := config{addr: ":8080", metricsAddr: ":9090", maxDelay: 500 * time.Millisecond, logLevel: slog.LevelInfo, telemetry: telemetryOn}
	if cfg != want {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

func TestConfigFlagsOverrideEnvironment(t *testing.T) {
	cfg, err := parseConfig(
		[]string{"-addr", "127.0.0.1:1", "-max-delay", "2s"},
		env(map[string]string{
			"SERVER_ADDR": ":2", "SERVER_METRICS_ADDR": ":3", "SERVER_FLAKY": "true",
			"SERVER_MAX_DELAY": "1s", "SERVER_SEED": "9", "SERVER_LOG_LEVEL": "debug",
			"SERVER_DELAY": "50ms", "SERVER_TELEMETRY": "false", "SERVER_LOKI_TENANT": "prod",
		}),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := config{addr: "127.0.0.1:1", metricsAddr: ":3", flaky: true, delay: 50 * time.Millisecond,
		maxDelay: 2 * time.Second, seed: 9, logLevel: slog.LevelDebug, telemetry: telemetryOff, lokiTenant: "prod"}
	if cfg != want {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

func TestConfigErrorsNameTheCulprit(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-max-delay", "soon"}, nil, "-max-delay"},
		{[]string{"-max-delay", "-1s"}, nil, "-max-delay: must be between 0 and 1m0s"},
		{[]string{"-max-delay", "2m"}, nil, "-max-delay: must be between 0 and 1m0s"},
		{[]string{"-delay", "-5ms"}, nil, "-delay: must be between 0 and 1m0s"},
		{[]string{"-seed", "-3"}, nil, "-seed"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-addr", "8080"}, nil, `invalid value "8080" for flag -addr`},
		{[]string{"-addr", ":99999"}, nil, `invalid value ":99999" for flag -addr: port 99999 is not between 1 and 65535`},
		{[]string{"-addr", ":-1"}, nil, `invalid value ":-1" for flag -addr: port -1 is not between 1 and 65535`},
		{[]string{"-addr", ":abc"}, nil, `invalid value ":abc" for flag -addr: port "abc" is neither a number nor a known service name`},
		{[]string{"-addr", "127.0.0.1:"}, nil, `invalid value "127.0.0.1:" for flag -addr: no port`},
		{[]string{"-metrics-addr", "x"}, nil, `invalid value "x" for flag -metrics-addr`},
		{nil, map[string]string{"SERVER_METRICS_ADDR": ":70000"}, `invalid value ":70000" for SERVER_METRICS_ADDR (flag -metrics-addr): port 70000`},
		{nil, map[string]string{"SERVER_DELAY": "2m"}, `invalid value 2m0s for SERVER_DELAY (flag -delay): must be between 0 and 1m0s`},
		{[]string{"-telemetry=maybe"}, nil, `"maybe" for flag -telemetry: must be true, false or slog`},
		{[]string{"-nope"}, nil, "-nope"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
		{[]string{"-addr", ":1", "stray"}, nil, `unexpected argument "stray"`},
		{[]string{"-flaky=true", "false"}, nil, `unexpected argument "false"`},
		{nil, map[string]string{"SERVER_FLAKY": "yes please"}, `invalid value "yes please" for SERVER_FLAKY (flag -flaky)`},
		{nil, map[string]string{"SERVER_MAX_DELAY": "500"}, `invalid value "500" for SERVER_MAX_DELAY (flag -max-delay): missing unit: write 500ms or 500s`},
		{[]string{"-delay", "5"}, nil, `invalid value "5" for flag -delay: missing unit: write 5ms or 5s`},
		{[]string{"-delay", "1.5"}, nil, `invalid value "1.5" for flag -delay: missing unit: write 1.5ms or 1.5s`},
		{[]string{"-delay", "soon"}, nil, `invalid value "soon" for flag -delay: not a duration: write a number and a unit, like 250ms, 1.5s or 1m`},
		// Numbers a duration cannot be written with get no advice to add a unit.
		{[]string{"-delay", "1e3"}, nil, `invalid value "1e3" for flag -delay: not a duration: write a number and a unit`},
		{[]string{"-delay", "NaN"}, nil, `invalid value "NaN" for flag -delay: not a duration: write a number and a unit`},
		{[]string{"-flaky", "false"}, nil, `unexpected argument "false" after -flaky: write -flaky=false`},
		{[]string{"-addr", ":1", "--healthcheck", "true"}, nil, `unexpected argument "true" after --healthcheck: write --healthcheck=true`},
		{[]string{"-loki-tenant", "prod|staging"}, nil, `invalid value "prod|staging" for flag -loki-tenant: not a Loki tenant ID: '|' is none of`},
		{nil, map[string]string{"SERVER_LOKI_TENANT": "a/b"}, `invalid value "a/b" for SERVER_LOKI_TENANT (flag -loki-tenant): not a Loki tenant ID`},
		{[]string{"-loki-tenant", "team a"}, nil, `for flag -loki-tenant: not a Loki tenant ID: ' '`},
		{[]string{"-loki-tenant", ".."}, nil, `invalid value ".." for flag -loki-tenant: not a Loki tenant ID`},
		{[]string{"-loki-tenant", "t\u00e9"}, nil, `for flag -loki-tenant: not a Loki tenant ID: 'é'`},
		{[]string{"-loki-tenant", strings.Repeat("x", 151)}, nil, `for flag -loki-tenant: longer than Loki's 150 characters`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+fmtEnv(tt.env), func(t *testing.T) {
			_, err := parseConfig(tt.args, env(tt.env), &bytes.Buffer{})
			var cfgErr configError
			if !errors.As(err, &cfgErr) {
				t.Fatalf("got %v, want a configError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConfigAcceptsEveryKindOfPort(t *testing.T) {
	for _, addr := range []string{":8080", "127.0.0.1:1", "[::1]:65535", "localhost:http", ":0"} {
		if _, err := parseConfig([]string{"-addr", addr}, env(nil), &bytes.Buffer{}); err != nil {
			t.Errorf("-addr %s: %v", addr, err)
		}
	}
}

func TestConfigAcceptsLokiTenants(t *testing.T) {
	for _, id := range []string{"fake", "prod", "team-a_prod.eu", "it's(*)!", "...", strings.Repeat("x", 150)} {
		if cfg, err := parseConfig([]string{"-loki-tenant", id}, env(nil), &bytes.Buffer{}); err != nil || cfg.lokiTenant != id {
			t.Errorf("-loki-tenant %s: got %q, %v", id, cfg.lokiTenant, err)
		}
	}
}

func TestConfigTelemetryModes(t *testing.T) {
	for args, want := range map[string]telemetryMode{
		"": telemetryOn, "-telemetry=1": telemetryOn, "-telemetry true": telemetryOn,
		"-telemetry=false": telemetryOff, "-telemetry false": telemetryOff,
		"-telemetry=slog": telemetrySlog, "-telemetry slog -flaky": telemetrySlog,
	} {
		cfg, err := parseConfig(strings.Fields(args), env(nil), &bytes.Buffer{})
		if err != nil || cfg.telemetry != want {
			t.Errorf("%q: got %q, %v; want %q", args, cfg.telemetry, err, want)
		}
	}
}

func fmtEnv(m map[string]string) string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	return strings.Join(s, " ")
}

func TestHelpDocumentsEveryFlagAndVariable(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, env(nil), &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-addr", "-metrics-addr", "-flaky", "-delay", "-max-delay", "-seed", "-log-level",
		"-telemetry", "-healthcheck", "SERVER_ADDR", "SERVER_METRICS_ADDR", "SERVER_FLAKY", "SERVER_DELAY",
		"SERVER_MAX_DELAY", "SERVER_SEED", "SERVER_LOG_LEVEL", "SERVER_TELEMETRY", "-loki-tenant", "SERVER_LOKI_TENANT",
		"OTEL_EXPORTER_OTLP_"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("-h does not mention %s:\n%s", want, help.String())
		}
	}
}

func TestOTLPEnabled(t *testing.T) {
	tests := []struct {
		env     map[string]string
		want    bool
		wantErr string
	}{
		{nil, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, true, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://x:3100/otlp/v1/logs"}, true, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_LOGS_EXPORTER": "none"}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false,
			`OTEL_EXPORTER_OTLP_PROTOCOL="grpc": only http/protobuf is supported`},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"}, true, ""},
	}
	for _, tt := range tests {
		got, err := otlpEnabled(env(tt.env), "LOGS")
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
			t.Errorf("%v: got %v, %v; want %v, %q", tt.env, got, err, tt.want, tt.wantErr)
		}
		var cfgErr configError
		if err != nil && !errors.As(err, &cfgErr) {
			t.Errorf("%v: %v is not a configError (exit 2)", tt.env, err)
		}
	}
}
