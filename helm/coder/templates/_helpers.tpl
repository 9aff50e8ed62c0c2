{{/* The name every object of this release carries. */}}
{{- define "coder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "coder.labels" -}}
app.kubernetes.io/name: {{ include "coder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ ternary "workspace-proxy" "server" .Values.coder.workspaceProxy }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "coder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "coder.serviceAccountName" -}}
{{- default (include "coder.name" .) .Values.coder.serviceAccount.name -}}
{{- end -}}

{{/* Whether coder.env sets NAME, so the chart's own default for it steps aside. */}}
{{- define "coder.envHas" -}}
{{- $name := .name -}}
{{- range .env -}}{{- if eq .name $name -}}true{{- end -}}{{- end -}}
{{- end -}}
