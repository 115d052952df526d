{{/* The chart name, or nameOverride. */}}
{{- define "nixery-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The operator's resource names: fullnameOverride, else the release name when it already says
"nixery-operator", else <release>-operator (release "nixery" gives "nixery-operator").
*/}}
{{- define "nixery-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "nixery-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "nixery-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nixery-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nixery-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nixery-operator.labels" -}}
helm.sh/chart: {{ include "nixery-operator.chart" . }}
{{ include "nixery-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nixery-operator
{{- end }}

{{- define "nixery-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nixery-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nixery-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "nixery-operator.instanceImage" -}}
{{- printf "%s:%s" .Values.instance.image.repository (default .Chart.AppVersion .Values.instance.image.tag) }}
{{- end }}

{{- define "nixery-operator.metricsServiceEnabled" -}}
{{- if or .Values.metrics.service.enabled .Values.metrics.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/*
What the operator allows spec.image to be: operator.allowedRegistryImages, and with the chart's
instance any tag or digest of instance.image.repository, so that the instance the chart makes is
never refused. An empty operator.allowedRegistryImages means the operator's default
(DEFAULT_REGISTRY_IMAGE_PATTERNS in operator/src/instance/gates.ts), which is kept beside the
instance's repository. Empty output: no flag, the operator's default.
*/}}
{{- define "nixery-operator.allowedRegistryImages" -}}
{{- $images := .Values.operator.allowedRegistryImages }}
{{- if .Values.instance.enabled }}
{{- if not $images }}
{{- $images = list "ghcr.io/nixery-operator/nixery:*" "ghcr.io/nixery-operator/nixery@sha256:*" }}
{{- end }}
{{- $repository := .Values.instance.image.repository }}
{{- $images = concat $images (list (printf "%s:*" $repository) (printf "%s@sha256:*" $repository)) | uniq }}
{{- end }}
{{- join "," $images }}
{{- end }}

{{/*
The labels every registry pod the operator creates carries (operator/src/kube/labels.ts
commonLabels with component registry; the Deployment in operator/src/instance/desired.ts).
*/}}
{{- define "nixery-operator.registryPodLabels" -}}
app.kubernetes.io/name: nixery
app.kubernetes.io/component: registry
app.kubernetes.io/managed-by: nixery-operator
{{- end }}

{{/* The same for the pods of NixImage build Jobs (operator/src/image/desired-job.ts, component build). */}}
{{- define "nixery-operator.buildPodLabels" -}}
app.kubernetes.io/name: nixery
app.kubernetes.io/component: build
app.kubernetes.io/managed-by: nixery-operator
{{- end }}

{{/*
The namespaces whose registry and build pods get NetworkPolicies, as JSON: networkPolicy.namespaces,
else watchNamespaces, else the release namespace.
*/}}
{{- define "nixery-operator.networkPolicyNamespaces" -}}
{{- $namespaces := .Values.networkPolicy.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson $namespaces }}
{{- end }}

{{/* The job label of the operator's metrics: the ServiceMonitor's (the metrics Service's name) unless told. */}}
{{- define "nixery-operator.operatorJob" -}}
{{- .Values.prometheusRule.operatorJob | default (printf "%s-metrics" (include "nixery-operator.fullname" .)) }}
{{- end }}

{{/*
"true" when the operator runs with --allow-node-config (operator.allowNodeConfig, or the chart's
instance asks for spec.nodeConfig): its node-config DaemonSets then run in the release namespace
(--node-config-namespace's default, the operator's own), which must allow privileged pods.
*/}}
{{- define "nixery-operator.nodeConfigAllowed" -}}
{{- if or .Values.operator.allowNodeConfig (and .Values.instance.enabled .Values.instance.nodeConfig.enabled) }}true{{ end }}
{{- end }}
