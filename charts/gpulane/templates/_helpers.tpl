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

{{/* Operator */}}
{{- define "gpulane.operator.fullname" -}}
{{- printf "%s-operator" (include "gpulane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpulane.operator.selectorLabels" -}}
{{ include "gpulane.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "gpulane.operator.labels" -}}
{{ include "gpulane.labels" . }}
app.kubernetes.io/component: operator
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
{{ include "gpulane.selectorLabels" . }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "gpulane.nodeAgent.labels" -}}
{{ include "gpulane.labels" . }}
app.kubernetes.io/component: node-agent
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
