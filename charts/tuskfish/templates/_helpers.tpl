{{/* Labels shared by every object of the chart. */}}
{{- define "tuskfish.labels" -}}
app.kubernetes.io/name: tuskfish
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tuskfish.selector" -}}
app.kubernetes.io/name: tuskfish
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Cluster-scoped names carry the namespace: two installs in two namespaces must not collide. */}}
{{- define "tuskfish.clusterName" -}}
{{ .Release.Name }}-{{ .Release.Namespace }}
{{- end }}
