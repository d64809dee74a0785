// Package plugin is a sloth SLO plugin, run by sloth's own Go interpreter
// (sloth generate --plugins-path): it gives the generated burn-rate alerts
// their for: and keep_firing_for:, chosen per severity in the spec's
// slo_plugins block. Sloth's spec has no field for them. docs/slo.md,
// "Pages that do not flap".
package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	prommodel "github.com/prometheus/common/model"

	pluginslov1 "github.com/slok/sloth/pkg/prometheus/plugin/slo/v1"
)

const (
	PluginVersion = "prometheus/slo/v1"
	PluginID      = "statuswatch/alert_hold/v1"
)

// Hold is how long an alert waits before it fires (for) and how long it
// keeps firing once its condition is false again (keep_firing_for).
type Hold struct {
	For           string `json:"for"`
	KeepFiringFor string `json:"keep_firing_for"`
}

type durations struct {
	forDuration   prommodel.Duration
	keepFiringFor prommodel.Duration
}

type plugin struct {
	bySeverity map[string]durations
}

// NewPlugin reads the config: a Hold per sloth severity ("page", "ticket").
func NewPlugin(config json.RawMessage, _ pluginslov1.AppUtils) (pluginslov1.Plugin, error) {
	holds := map[string]Hold{}
	if err := json.Unmarshal(config, &holds); err != nil {
		return nil, fmt.Errorf("alert_hold: bad config: %w", err)
	}
	p := plugin{bySeverity: map[string]durations{}}
	for severity, hold := range holds {
		forDuration, err := parse(hold.For)
		if err != nil {
			return nil, fmt.Errorf("alert_hold: %s: for: %w", severity, err)
		}
		keepFiringFor, err := parse(hold.KeepFiringFor)
		if err != nil {
			return nil, fmt.Errorf("alert_hold: %s: keep_firing_for: %w", severity, err)
		}
		p.bySeverity[severity] = durations{forDuration: forDuration, keepFiringFor: keepFiringFor}
	}
	return p, nil
}

func parse(s string) (prommodel.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return prommodel.ParseDuration(s)
}

// ProcessSLO sets the hold of every alert by its sloth_severity label; an
// alert whose severity the config does not name is an error, not a default.
func (p plugin) ProcessSLO(_ context.Context, _ *pluginslov1.Request, result *pluginslov1.Result) error {
	rules := result.SLORules.AlertRules.Rules
	for i := range rules {
		severity := rules[i].Labels["sloth_severity"]
		hold, ok := p.bySeverity[severity]
		if !ok {
			return fmt.Errorf("alert_hold: no hold configured for %s's severity %q", rules[i].Alert, severity)
		}
		rules[i].For = hold.forDuration
		rules[i].KeepFiringFor = hold.keepFiringFor
	}
	return nil
}
