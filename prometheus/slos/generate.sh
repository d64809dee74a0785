#!/bin/sh
# Generates the SLOs' Prometheus rules from the sloth specs beside this file:
#   prometheus/slos/generate.sh [OUT_DIR]   (default: prometheus/rules)
# SLOTH is the sloth binary (make test builds it into .cache/tools);
# SLO_SPECS another folder of specs (the tests use it).
# tests/test_stack_slo_generated.py runs this into a temporary folder and
# fails when the committed rules differ.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
sloth=${SLOTH:-$root/.cache/tools/sloth-0.16.0/sloth}
specs=${SLO_SPECS:-$root/prometheus/slos}
out=${1:-$root/prometheus/rules}
"$sloth" generate --no-log \
  --plugins-path "$root/prometheus/slos/plugins" \
  --fs-include '\.yml$' \
  --input "$specs" --out "$out"
# Sloth starts each file with a YAML document marker, which the Helm chart
# cannot embed in a PrometheusRule's spec: drop it, and say where the
# source is.
for spec in "$specs"/*.yml; do
  name=$(basename "$spec")
  sed -e '1{/^$/d;}' -e '/^---$/d' \
    -e "s|^# DO NOT EDIT\.\$|# DO NOT EDIT: edit prometheus/slos/$name, then run prometheus/slos/generate.sh.|" \
    "$out/$name" > "$out/$name.tmp"
  mv "$out/$name.tmp" "$out/$name"
done
