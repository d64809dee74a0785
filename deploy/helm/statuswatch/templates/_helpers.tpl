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

{{- define "statuswatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "statuswatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
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

{{- define "statuswatch.serviceAccountName" -}}
{{- default (include "statuswatch.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "statuswatch.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{/* The server's in-cluster base URL. */}}
{{- define "statuswatch.serverURL" -}}
{{- printf "http://%s-server.%s.svc:%d" (include "statuswatch.fullname" .) .Release.Namespace (int .Values.server.service.port) }}
{{- end }}

{{/* Whether the cluster serves a prometheus-operator kind, by its CRD:
(dict "ctx" $ "kind" "ServiceMonitor"). Each kind on its own: a cluster may
have some of the CRDs only (those an OpenTelemetry target allocator uses). */}}
{{- define "statuswatch.serves" -}}
{{- if .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end }}
{{- end }}

{{/* The hardening every container gets, as in docker-compose.yml. */}}
{{- define "statuswatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* The pod-level hardening, for a user id: (dict "uid" 65532). */}}
{{- define "statuswatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
