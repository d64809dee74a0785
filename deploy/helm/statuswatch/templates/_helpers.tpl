{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "statuswatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects append "-server", "-client" and so on. */}}
{{- define "statuswatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := include "statuswatch.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The chart's own labels of every object. */}}
{{- define "statuswatch.standardLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "statuswatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* An object's labels, one map merged from commonLabels, then the object's
own (extra), then the chart's: a key is never written twice.
(dict "ctx" $ "extra" $map "component" "server"), extra and component optional. */}}
{{- define "statuswatch.labels" -}}
{{- $labels := deepCopy (.ctx.Values.commonLabels | default dict) }}
{{- $labels = mergeOverwrite $labels (deepCopy (.extra | default dict)) (include "statuswatch.standardLabels" .ctx | fromYaml) }}
{{- with .component }}
{{- $_ := set $labels "app.kubernetes.io/component" . }}
{{- end }}
{{- toYaml $labels }}
{{- end }}

{{/* A pod's labels: commonLabels, the component's podLabels, then the
selector labels. (dict "ctx" $ "component" "server") */}}
{{- define "statuswatch.podLabels" -}}
{{- $values := get .ctx.Values .component }}
{{- $labels := deepCopy (.ctx.Values.commonLabels | default dict) }}
{{- $labels = mergeOverwrite $labels (deepCopy ($values.podLabels | default dict)) (include "statuswatch.selectorLabels" . | fromYaml) }}
{{- toYaml $labels }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "server"). */}}
{{- define "statuswatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "statuswatch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An object name for a file or folder name: lower case, every run of
characters a DNS subdomain cannot hold ("_", ".", upper case) as one "-".
The rule files, dashboards and tenant folders are named freely. */}}
{{- define "statuswatch.nameOf" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trimAll "-" }}
{{- end }}

{{/* Records that file (base name) makes the object name, in seen (a dict);
fails when another file made it already: (dict "seen" $seen "name" $name "file" $file). */}}
{{- define "statuswatch.claimName" -}}
{{- with get .seen .name }}
{{- fail (printf "%s and %s both make the object name %s: rename one" $.file . $.name) }}
{{- end }}
{{- $_ := set .seen .name .file }}
{{- end }}

{{/* The client's checks across options (client/config.py parse_config),
which a JSON schema cannot express: refused here, not in a crash loop. */}}
{{- define "statuswatch.checkClient" -}}
{{- with .Values.client }}
{{- if ge (float64 .timeout) (float64 .interval) }}
{{- fail (printf "client.timeout (%v s) must be shorter than client.interval (%v s): a probe could still run when the next one is due, and the monitor refuses to start" .timeout .interval) }}
{{- end }}
{{- if lt (float64 .summaryInterval) (float64 .interval) }}
{{- fail (printf "client.summaryInterval (%v s) must be at least client.interval (%v s): a summary would see no probe, and the monitor refuses to start" .summaryInterval .interval) }}
{{- end }}
{{- end }}
{{- include "statuswatch.checkTargets" . }}
{{- end }}

{{/* The server's bound on -max-delay (server/config.go maxDelayFlag),
which the schema's duration pattern cannot express. */}}
{{- define "statuswatch.checkServer" -}}
{{- $units := dict "ns" 1.0 "us" 1e3 "µs" 1e3 "ms" 1e6 "s" 1e9 "m" 6e10 }}
{{- $ns := 0.0 }}
{{- range regexFindAll "[0-9.]+[^0-9.]+" .Values.server.maxDelay -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $ns = addf $ns (mulf (float64 $number) (get $units (trimPrefix $number .))) }}
{{- end }}
{{- if gt $ns 6e10 }}
{{- fail (printf "server.maxDelay (%s) must be at most 1m, and the server refuses to start" .Values.server.maxDelay) }}
{{- end }}
{{- end }}

{{/* The pods' ServiceAccount: the one the chart makes, else the one named,
else the namespace's default (a name of an account nobody made would keep
every pod from being created). */}}
{{- define "statuswatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "statuswatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given; the tag
defaults to the chart's appVersion. (dict "ctx" $ "image" .Values.server.image) */}}
{{- define "statuswatch.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The server Service's fully qualified name, with the trailing dot: one
DNS query, no search-path misses. */}}
{{- define "statuswatch.serverHost" -}}
{{- printf "%s-server.%s.svc.%s." (include "statuswatch.fullname" .) .Release.Namespace (trimSuffix "." .Values.clusterDomain) }}
{{- end }}

{{/* The server's in-cluster base URL. */}}
{{- define "statuswatch.serverURL" -}}
{{- printf "http://%s:%d" (include "statuswatch.serverHost" .) (int .Values.server.service.port) }}
{{- end }}

{{/* Whether the cluster serves a prometheus-operator kind, by its CRD:
(dict "ctx" $ "kind" "ServiceMonitor"). Each kind on its own: a cluster may
have some of the CRDs only (those an OpenTelemetry target allocator uses). */}}
{{- define "statuswatch.serves" -}}
{{- if .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end }}
{{- end }}

{{/* A container's env: the chart's variables (a list of name/value maps)
with extraEnv merged in by name. An extraEnv entry replaces the chart's
variable of its name in place (the user's value wins: two entries of one name
are refused by the API server's server-side apply); the others follow.
(dict "chart" $env "extra" .Values.server.extraEnv "key" "server.extraEnv") */}}
{{- define "statuswatch.env" -}}
{{- $extra := dict }}
{{- range .extra }}
{{- if hasKey $extra .name }}
{{- fail (printf "%s names %s twice: a container's variables must have unique names" $.key .name) }}
{{- end }}
{{- $_ := set $extra .name . }}
{{- end }}
{{- $env := list }}
{{- $chart := dict }}
{{- range .chart }}
{{- $_ := set $chart .name true }}
{{- $env = append $env (get $extra .name | default .) }}
{{- end }}
{{- range .extra }}
{{- if not (hasKey $chart .name) }}
{{- $env = append $env . }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* A Prometheus duration (1h30m, 15s, 500ms) in milliseconds. */}}
{{- define "statuswatch.promMillis" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 "w" 604800000 "y" 31536000000 }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|y|w|d|h|m|s)" . -1 }}
{{- $number := regexFind "^[0-9]+" . }}
{{- $ms = add $ms (mul (int64 $number) (get $units (trimPrefix $number .))) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/* Checks of the monitoring values no JSON schema can express. */}}
{{- define "statuswatch.checkMonitoring" -}}
{{- with .Values.serviceMonitor }}
{{- if and .enabled (lt (int64 (include "statuswatch.promMillis" .interval)) (int64 (include "statuswatch.promMillis" .scrapeTimeout))) }}
{{- fail (printf "serviceMonitor.scrapeTimeout (%s) must not be longer than serviceMonitor.interval (%s): Prometheus refuses such a scrape config and the target, and StatusServerDown with it, would be gone" .scrapeTimeout .interval) }}
{{- end }}
{{- end }}
{{- if and .Values.prometheusRule.enabled .Values.serviceMonitor.enabled (ne .Values.serviceMonitor.jobLabel "server") }}
{{- fail (printf "prometheusRule.enabled with serviceMonitor.jobLabel %q: the rules watch job=\"server\", so they would watch another release or nothing. One release per Prometheus ships the rules; turn them off in this one (docs/kubernetes.md, \"Two releases in one cluster\")" .Values.serviceMonitor.jobLabel) }}
{{- end }}
{{- end }}

{{/* What both Deployments' pods share: (dict "ctx" $ "component" "server").
The spec's lines up to the containers. */}}
{{- define "statuswatch.podSpec" -}}
{{- $values := get .ctx.Values .component -}}
serviceAccountName: {{ include "statuswatch.serviceAccountName" .ctx }}
automountServiceAccountToken: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A Deployment's pod template metadata: (dict "ctx" $ "component" "server"). */}}
{{- define "statuswatch.podMetadata" -}}
{{- $values := get .ctx.Values .component -}}
labels:
  {{- include "statuswatch.podLabels" . | nindent 2 }}
{{- with $values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The probes of a component's container, as configured: (dict "values" .Values.server). */}}
{{- define "statuswatch.probes" -}}
{{- $probes := dict }}
{{- range $probe := list "startupProbe" "livenessProbe" "readinessProbe" }}
{{- with get $.values $probe }}
{{- $_ := set $probes $probe . }}
{{- end }}
{{- end }}
{{- with $probes }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The name of a file the sidecars write (a ConfigMap's data key), unique
per namespace and release: <namespace>_<fullname>_<file>.
(dict "ctx" $ "file" "monitor.yml") */}}
{{- define "statuswatch.fileKey" -}}
{{- printf "%s_%s_%s" .ctx.Release.Namespace (include "statuswatch.fullname" .ctx) .file }}
{{- end }}

{{/* A dashboard's uid in this release: the file's uid and a hash of the
namespace and release, at most Grafana's 40 characters.
(dict "ctx" $ "uid" "status-server") */}}
{{- define "statuswatch.dashboardUID" -}}
{{- printf "%s-%s" (trunc 31 .uid | trimSuffix "-") (sha256sum (printf "%s/%s" .ctx.Release.Namespace .ctx.Release.Name) | trunc 8) }}
{{- end }}
