{{/*
Shared names and labels. Every object carries the standard app.kubernetes.io labels; each component's
selector adds app.kubernetes.io/component so the operator and the agent never select each other's pods.
*/}}

{{- define "gpulane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpulane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpulane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpulane.labels" -}}
helm.sh/chart: {{ include "gpulane.chart" . }}
app.kubernetes.io/name: {{ include "gpulane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: gpulane
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gpulane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpulane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* One component's labels and selector labels: called with (dict "root" $ "component" "operator"). */}}
{{- define "gpulane.componentLabels" -}}
{{ include "gpulane.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gpulane.componentSelectorLabels" -}}
{{ include "gpulane.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A component's nodeSelector, affinity and tolerations for its pod spec; called with the component's values. */}}
{{- define "gpulane.podPlacement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Operator */}}
{{- define "gpulane.operator.fullname" -}}
{{- printf "%s-operator" (include "gpulane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpulane.operator.selectorLabels" -}}
{{- include "gpulane.componentSelectorLabels" (dict "root" . "component" "operator") }}
{{- end }}

{{- define "gpulane.operator.labels" -}}
{{- include "gpulane.componentLabels" (dict "root" . "component" "operator") }}
{{- end }}

{{- define "gpulane.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "gpulane.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gpulane.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{/* Node agent */}}
{{- define "gpulane.nodeAgent.fullname" -}}
{{- printf "%s-node-agent" (include "gpulane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpulane.nodeAgent.selectorLabels" -}}
{{- include "gpulane.componentSelectorLabels" (dict "root" . "component" "node-agent") }}
{{- end }}

{{- define "gpulane.nodeAgent.labels" -}}
{{- include "gpulane.componentLabels" (dict "root" . "component" "node-agent") }}
{{- end }}

{{- define "gpulane.nodeAgent.serviceAccountName" -}}
{{- if .Values.nodeAgent.serviceAccount.create }}
{{- default (include "gpulane.nodeAgent.fullname" .) .Values.nodeAgent.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.nodeAgent.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gpulane.nodeAgent.image" -}}
{{- printf "%s:%s" .Values.nodeAgent.image.repository (default .Chart.AppVersion .Values.nodeAgent.image.tag) }}
{{- end }}

{{/*
The Prometheus Operator monitors, one per enabled component; ServiceMonitor and PodMonitor differ only in
their kind, the key of their endpoints and what they scrape. Called with (dict "root" $ "kind" "PodMonitor"
"endpoints" "podMetricsEndpoints" "config" .Values.monitoring.podMonitor "scrapes" "the %s pods directly (no Service needed)").
*/}}
{{- define "gpulane.monitors" -}}
{{- $root := .root }}
{{- $args := . }}
{{- range $component := list "operator" "node-agent" }}
{{- if ternary $root.Values.operator.enabled $root.Values.nodeAgent.enabled (eq $component "operator") }}
---
# Prometheus Operator scrape config for {{ printf $args.scrapes $component }}.
apiVersion: monitoring.coreos.com/v1
kind: {{ $args.kind }}
metadata:
  name: {{ include "gpulane.fullname" $root }}-{{ $component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "gpulane.componentLabels" (dict "root" $root "component" $component) | nindent 4 }}
    {{- with $args.config.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "gpulane.componentSelectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  {{ $args.endpoints }}:
    - port: metrics
      path: /metrics
      interval: {{ $args.config.interval }}
      scrapeTimeout: {{ $args.config.scrapeTimeout }}
      {{- if eq $component "node-agent" }}
      # The agent's per-pod series carry the *workload's* namespace/pod/container labels; without
      # honorLabels the target's own namespace/pod would replace them (renamed exported_*), and the
      # dashboards' namespace and pod filters would match the agent instead of the jobs.
      honorLabels: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}
