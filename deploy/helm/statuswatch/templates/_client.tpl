{{/* The monitor's Deployment of one shard: (dict "ctx" $ "index" 0 "count" 1). */}}
{{- define "statuswatch.clientDeployment" -}}
{{- $index := .index }}
{{- $count := .count }}
{{- with .ctx }}
{{- $sel := dict "ctx" . "component" "client" }}
{{- $shard := dict }}
{{- if gt $count 1 }}
{{- $shard = dict "statuswatch/shard" (toString $index) }}
{{- end }}
{{- $podLabels := mergeOverwrite (include "statuswatch.podLabels" $sel | fromYaml) $shard }}
{{- $podAnnotations := deepCopy (.Values.client.podAnnotations | default dict) }}
{{- if .Values.client.targets }}
{{- $_ := set $podAnnotations "checksum/targets" (include "statuswatch.targetsFile" . | sha256sum) }}
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "statuswatch.fullname" . }}-client{{ if gt $count 1 }}-{{ $index }}{{ end }}
  labels:
    {{- include "statuswatch.labels" (dict "ctx" . "component" "client" "extra" $shard) | nindent 4 }}
spec:
  # One monitor per shard: a second one would probe its targets twice.
  replicas: 1
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit }}
  strategy:
    type: Recreate
  selector:
    matchLabels:
      {{- include "statuswatch.selectorLabels" $sel | nindent 6 }}
      {{- with $shard }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- toYaml $podLabels | nindent 8 }}
      {{- with $podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "statuswatch.podSpec" $sel | nindent 6 }}
      containers:
        - name: client
          image: {{ include "statuswatch.image" (dict "ctx" . "image" .Values.client.image) | quote }}
          imagePullPolicy: {{ .Values.client.image.pullPolicy }}
          # Configured by environment variables, the fallbacks of the
          # client's options (python -m client -h lists them).
          env:
            {{- include "statuswatch.env" (dict "chart" (include "statuswatch.clientEnv" (dict "ctx" . "index" $index "count" $count) | fromYamlArray) "extra" .Values.client.extraEnv "key" "client.extraEnv") | nindent 12 }}
          {{- with .Values.client.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "statuswatch.probes" (dict "values" .Values.client) | nindent 10 }}
          resources:
            {{- toYaml .Values.client.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.client.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .Values.client.targets }}
            - name: targets
              mountPath: {{ include "statuswatch.targetsDir" . }}
              readOnly: true
            {{- end }}
            {{- with .Values.client.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        # The heartbeat file; the root file system is read-only.
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 1Mi
        {{- if .Values.client.targets }}
        - name: targets
          configMap:
            name: {{ include "statuswatch.fullname" . }}-targets
        {{- end }}
        {{- with .Values.client.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}
{{- end }}

{{/* The monitor's variables in one shard, a YAML list of name/value maps:
(dict "ctx" $ "index" 0 "count" 1). Without targets, GET /status of the
server as always; with them, the file and the shard, and only shard 0 sends
the flaky toggles (the client sends them to TARGET_URL when it is set). */}}
{{- define "statuswatch.clientEnv" -}}
{{- $values := .ctx.Values.client }}
{{- $env := list }}
{{- if or (not $values.targets) (eq (int .index) 0) }}
{{- $env = append $env (dict "name" "TARGET_URL" "value" (include "statuswatch.serverURL" .ctx)) }}
{{- end }}
{{- $env = append $env (dict "name" "PROBE_INTERVAL" "value" (toString $values.interval)) }}
{{- $env = append $env (dict "name" "PROBE_TIMEOUT" "value" (toString $values.timeout)) }}
{{- $env = append $env (dict "name" "FLAKY_INTERVAL" "value" (ternary (toString $values.flakyInterval) "0" (eq (int .index) 0))) }}
{{- $env = append $env (dict "name" "SUMMARY_INTERVAL" "value" (toString $values.summaryInterval)) }}
{{- $env = append $env (dict "name" "SUCCESS_CODES" "value" $values.successCodes) }}
{{- $env = append $env (dict "name" "LOG_FORMAT" "value" $values.logFormat) }}
{{- $env = append $env (dict "name" "HEARTBEAT_FILE" "value" "/tmp/heartbeat") }}
{{- if $values.targets }}
{{- $env = append $env (dict "name" "TARGETS_FILE" "value" (printf "%s/targets.yml" (include "statuswatch.targetsDir" .ctx))) }}
{{- $env = append $env (dict "name" "SHARD" "value" (printf "%d/%d" (int .index) (int .count))) }}
{{- end }}
{{- with .ctx.Values.loki.url }}
{{- $env = append $env (dict "name" "LOKI_URL" "value" (printf "%s/loki/api/v1/push" (trimSuffix "/" .))) }}
{{- end }}
{{- with .ctx.Values.loki.tenant }}
{{- $env = append $env (dict "name" "LOKI_TENANT" "value" .) }}
{{- end }}
{{- with .ctx.Values.tracing.otlpEndpoint }}
{{- $env = append $env (dict "name" "OTEL_SERVICE_NAME" "value" "status-monitor") }}
{{- $env = append $env (dict "name" "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" "value" (printf "%s/v1/traces" (trimSuffix "/" .))) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* Where the targets file is mounted. */}}
{{- define "statuswatch.targetsDir" -}}
/etc/statuswatch/targets
{{- end }}

{{/* The targets file (client/targets.schema.json) from client.targets and
client.targetDefaults. */}}
{{- define "statuswatch.targetsFile" -}}
{{- $file := dict "targets" .Values.client.targets }}
{{- with .Values.client.targetDefaults }}
{{- $_ := set $file "defaults" . }}
{{- end }}
{{- printf "# Made by the statuswatch chart from client.targetDefaults and client.targets.\n%s" (toYaml $file) }}
{{- end }}

{{/* A target's URL as the monitor checks it (client/config.py _url): a
host, a port from 1 to 65535, and each label of an ASCII host name 1 to 63
letters, digits, "_" or "-". The authority ends at the first "/", "?" or
"#", its user info at its last "@", the host at its first ":". An IPv6
address or a name IDNA encodes is left to the monitor. */}}
{{- define "statuswatch.checkTargetURL" -}}
{{- $authority := regexReplaceAll "^[^:]*://([^/?#]*).*$" .url "${1}" }}
{{- $hostPort := regexReplaceAll "^.*@" $authority "" }}
{{- if not (hasPrefix "[" $hostPort) }}
{{- $host := regexReplaceAll ":.*$" $hostPort "" }}
{{- $port := ternary (regexReplaceAll "^[^:]*:" $hostPort "") "" (contains ":" $hostPort) }}
{{- $problem := "" }}
{{- if not $host }}
{{- $problem = "has no host" }}
{{- else if and (regexMatch "^[\\x00-\\x7f]*$" $host) (not (regexMatch "^[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,63})*\\.?$" $host)) }}
{{- $problem = printf "has a bad host name %q (each label 1 to 63 letters, digits, _ or -)" $host }}
{{- else if and $port (or (not (regexMatch "^[0-9]{1,5}$" $port)) (lt (atoi $port) 1) (gt (atoi $port) 65535)) }}
{{- $problem = printf "has a bad port %q (1 to 65535)" $port }}
{{- end }}
{{- if $problem }}
{{- fail (printf "client.targets: target %s's url %s %s, and the monitor refuses to start" .name .url $problem) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The names on the monitors' records, comma-separated (the dashboard's
$target options): client.targets' names, or the status server's alone, as
the monitor names it without a targets file. */}}
{{- define "statuswatch.targetNames" -}}
{{- $names := list }}
{{- range .Values.client.targets }}
{{- $names = append $names .name }}
{{- end }}
{{- join "," ($names | default (list "status-server")) }}
{{- end }}

{{/* The targets' checks no JSON schema expresses, as the monitor makes them
at start (client/targets.py): unique names, each timeout below its
interval, no interval beyond the summary's window, a URL with a host and
a port a connection can use, no body or JSON expectation of a HEAD
request, no expect.tls of its own on an http target, and every ${VAR} of a
header set in the monitor's environment (by the chart, client.extraEnv,
or possibly client.extraEnvFrom, which the chart cannot look into). */}}
{{- define "statuswatch.checkTargets" -}}
{{- $values := .Values.client }}
{{- if and (gt (int $values.shards) 1) (not $values.targets) }}
{{- fail (printf "client.shards (%d) needs client.targets: without a targets file every monitor would probe the status server, and toggle it" (int $values.shards)) }}
{{- end }}
{{- $defaults := $values.targetDefaults | default dict }}
{{- $env := dict "HOSTNAME" true }}
{{- $lastShard := dict "ctx" . "index" (sub (int $values.shards) 1) "count" (int $values.shards) }}
{{- range concat (include "statuswatch.clientEnv" $lastShard | fromYamlArray) ($values.extraEnv | default list) }}
{{- $_ := set $env .name true }}
{{- end }}
{{- $seen := dict }}
{{- range $place, $target := $values.targets }}
{{- if hasKey $seen $target.name }}
{{- fail (printf "client.targets names %s twice (targets[%d] and targets[%d]): each name must be unique, it is the target key of every record" $target.name (get $seen $target.name) $place) }}
{{- end }}
{{- $_ := set $seen $target.name $place }}
{{- $interval := float64 (coalesce $target.interval $defaults.interval $values.interval) }}
{{- $timeout := float64 (coalesce $target.timeout $defaults.timeout $values.timeout) }}
{{- if ge $timeout $interval }}
{{- fail (printf "client.targets: target %s's timeout (%v s) must be shorter than its interval (%v s), and the monitor refuses to start" $target.name $timeout $interval) }}
{{- end }}
{{- include "statuswatch.checkTargetURL" $target }}
{{- if eq (coalesce $target.method $defaults.method "GET") "HEAD" }}
{{- $expect := mergeOverwrite (deepCopy ($defaults.expect | default dict)) ($target.expect | default dict) }}
{{- range $kind := list "body" "json" }}
{{- if hasKey $expect $kind }}
{{- fail (printf "client.targets: target %s's expect.%s: the answer to a HEAD request has no body to check, and the monitor refuses to start" $target.name $kind) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (hasKey ($target.expect | default dict) "tls") (not (hasPrefix "https:" (lower $target.url))) }}
{{- fail (printf "client.targets: target %s's expect.tls: an http URL has no certificate to judge, and the monitor refuses to start" $target.name) }}
{{- end }}
{{- if not $values.extraEnvFrom }}
{{- range $header, $value := mergeOverwrite (deepCopy ($defaults.headers | default dict)) ($target.headers | default dict) }}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" $value -1 }}
{{- $var := trimPrefix "${" . | trimSuffix "}" }}
{{- if not (hasKey $env $var) }}
{{- fail (printf "client.targets: target %s's header %s names ${%s}, which neither the chart nor client.extraEnv sets (nor client.extraEnvFrom, empty): the monitor refuses to start" $target.name $header $var) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if gt $interval (float64 $values.summaryInterval) }}
{{- fail (printf "client.targets: target %s's interval (%v s) is longer than client.summaryInterval (%v s): its summaries would see no probe, and the monitor refuses to start" $target.name $interval $values.summaryInterval) }}
{{- end }}
{{- end }}
{{- end }}
