{{/* Labels of every object: those of manifests/ plus Helm's. */}}
{{- define "muster.labels" -}}
app.kubernetes.io/name: muster-scheduler
app.kubernetes.io/part-of: muster
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pods' selector: the same as manifests/, so the PDB, the Service and
the anti-affinity select the same pods whichever way muster was installed. */}}
{{- define "muster.selectorLabels" -}}
app.kubernetes.io/name: muster-scheduler
{{- end -}}

{{- define "muster.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Refuse settings that cannot work, at render time. */}}
{{- define "muster.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.leaderElect) -}}
{{- fail "replicaCount > 1 needs leaderElection.leaderElect: true (two schedulers without a leader would both bind the same pods)" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1: without muster-scheduler, pods with schedulerName muster are never scheduled" -}}
{{- end -}}
{{- end -}}
