// Package compose loads docker-compose.yml with compose-go, the loader
// Docker Compose v2 itself uses, as `docker compose up` would with the
// values of .env.example: interpolation, the schema, depends_on targets,
// volumes and health checks. Any warning the loader logs fails the test.
package compose

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

const root = "../.."

// secrets are what make up (or the reader) puts in .env's empty values.
var secrets = []string{"GRAFANA_ADMIN_PASSWORD=an-admin-password", "GRAFANA_SECRET_KEY=a-secret-key"}

// warnings collects what the loader logs at warning level or above.
type warnings struct{ messages []string }

func (w *warnings) Levels() []logrus.Level { return logrus.AllLevels[:logrus.WarnLevel+1] }

func (w *warnings) Fire(e *logrus.Entry) error {
	w.messages = append(w.messages, e.Message)
	return nil
}

// load reads docker-compose.yml with .env.example, env taking precedence
// over the file as the shell's environment does for docker compose.
func load(t *testing.T, env ...string) (*types.Project, error) {
	t.Helper()
	w := &warnings{}
	logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
	logrus.AddHook(w)
	logrus.SetOutput(testWriter{t})
	t.Cleanup(func() {
		if len(w.messages) > 0 {
			t.Errorf("the loader warned: %q", w.messages)
		}
	})
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
		cli.WithEnvFiles(filepath.Join(root, ".env.example")),
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func project(t *testing.T) *types.Project {
	t.Helper()
	p, err := load(t, secrets...)
	if err != nil {
		t.Fatalf("docker compose would refuse the file: %v", err)
	}
	return p
}

func TestLoads(t *testing.T) {
	p := project(t)
	if p.Name != "statuswatch" {
		t.Errorf("project name %q, want statuswatch", p.Name)
	}
	want := []string{"alertmanager", "client", "grafana", "loki", "prometheus", "server", "tempo"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
}

func TestInterpolation(t *testing.T) {
	p := project(t)
	grafana := p.Services["grafana"]
	for key, want := range map[string]string{
		"GF_SECURITY_ADMIN_PASSWORD": "an-admin-password",
		"GF_SECURITY_SECRET_KEY":     "a-secret-key",
		"GF_AUTH_ANONYMOUS_ENABLED":  "true", // from .env.example
	} {
		if got := grafana.Environment[key]; got == nil || *got != want {
			t.Errorf("grafana %s = %v, want %q", key, got, want)
		}
	}
	if got := p.Services["client"].Environment["FLAKY_INTERVAL"]; got == nil || *got != "10" {
		t.Errorf("client FLAKY_INTERVAL = %v, want the default 10", got)
	}
}

// The example's secrets are empty on purpose: compose must refuse to start
// Grafana without them rather than fall back to a default password.
func TestEmptySecretsAreRefused(t *testing.T) {
	_, err := load(t)
	if err == nil || !strings.Contains(err.Error(), "GRAFANA_ADMIN_PASSWORD") {
		t.Fatalf("loading with the example's empty secrets: %v, want an error naming GRAFANA_ADMIN_PASSWORD", err)
	}
}

func TestDependenciesWaitForHealthChecks(t *testing.T) {
	p := project(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
				continue
			}
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s -> %s: condition %q, want %q", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
			if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
	}
}

func TestHealthChecks(t *testing.T) {
	for name, s := range project(t).Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Errorf("%s: health check %v, want an exec-form CMD", name, hc)
			continue
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil || hc.StartPeriod == nil {
			t.Errorf("%s: health check without interval, timeout, retries or start period", name)
		} else if *hc.Timeout >= *hc.Interval {
			t.Errorf("%s: health check timeout %v not under its interval %v", name, *hc.Timeout, *hc.Interval)
		}
	}
}

func TestVolumes(t *testing.T) {
	p := project(t)
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if !strings.HasPrefix(v.Source, abs+string(filepath.Separator)) {
					t.Errorf("%s mounts %s, outside the repository", name, v.Source)
				} else if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s mounts %s writable; configuration is mounted read-only", name, v.Source)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s uses volume %s, which is not declared", name, v.Source)
				}
			default:
				t.Errorf("%s: unexpected %s mount of %s", name, v.Type, v.Source)
			}
		}
	}
}

func TestHardening(t *testing.T) {
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+$`)
	for name, s := range project(t).Services {
		if !pinned.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		if !s.ReadOnly || strings.Join(s.CapDrop, ",") != "ALL" || s.User == "" || strings.HasPrefix(s.User, "0") {
			t.Errorf("%s: read_only %v, cap_drop %v, user %q", name, s.ReadOnly, s.CapDrop, s.User)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, not 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
	}
}
