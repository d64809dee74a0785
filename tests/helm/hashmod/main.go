// Command hashmod prints, for each name read from stdin (one a line), the
// shard Prometheus' own hashmod relabel action gives it for each modulus
// named on the command line: "name<TAB>shard shard ...". The client's
// client/shard.py must agree (tests/test_client_shard.py).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hashmod:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	configs := make([]*relabel.Config, 0, len(args))
	for _, arg := range args {
		modulus, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			return fmt.Errorf("modulus %q: %w", arg, err)
		}
		// As a scrape config's relabel_configs entry:
		// {source_labels: [target], action: hashmod, modulus: N, target_label: shard}
		cfg := relabel.DefaultRelabelConfig
		cfg.SourceLabels = model.LabelNames{"target"}
		cfg.Action = relabel.HashMod
		cfg.Modulus = modulus
		cfg.TargetLabel = "shard"
		if err := cfg.Validate(model.UTF8Validation); err != nil {
			return fmt.Errorf("modulus %d: %w", modulus, err)
		}
		configs = append(configs, &cfg)
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		shards := make([]string, 0, len(configs))
		for _, cfg := range configs {
			lb := labels.NewBuilder(labels.FromStrings("target", in.Text()))
			relabel.ProcessBuilder(lb, cfg)
			shards = append(shards, lb.Get("shard"))
		}
		fmt.Fprintf(out, "%s\t%s\n", in.Text(), strings.Join(shards, " "))
	}
	return in.Err()
}
