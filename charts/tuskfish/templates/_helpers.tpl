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

{{/* The operator's rights on its own kinds: read all, write finalizers and status only. */}}
{{- define "tuskfish.pipelineRules" -}}
- apiGroups: ["tuskfish.dev"]
  resources: ["appversions", "environments", "releases", "approvals", "notifications", "productversions", "productreleases"]
  verbs: ["get", "list", "watch"]
# Notifications: the pipeline's Events are what is delivered, and a target's URL is in a Secret
# of the pipeline namespace (read one at a time, by name; never cached). Secrets are listed and
# watched one at a time too (field selector on the name): an Environment's kubeconfig Secret, so
# that a rotated one is used at once.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Agents' Leases (label tuskfish.dev/agent): whether each agent is connected.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch"]
# Releases: their finalizer; and a ProductRelease's own Releases, one per app, which it creates,
# sets the version of and deletes (in the ProductRelease's namespace only).
- apiGroups: ["tuskfish.dev"]
  resources: ["releases"]
  verbs: ["create", "patch", "update", "delete"]
- apiGroups: ["tuskfish.dev"]
  resources: ["appversions/status", "environments/status", "releases/status", "notifications/status", "productversions/status", "productreleases/status"]
  verbs: ["patch", "update"]
# Ledgers: the audit records it writes (a key added per record; the API server refuses any
# change to one written) and the retention's deletion of months past it.
- apiGroups: ["tuskfish.dev"]
  resources: ["ledgers"]
  verbs: ["get", "list", "create", "patch", "delete"]
{{- end }}
