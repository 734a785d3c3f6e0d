{{- define "proglog-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "proglog-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "proglog-operator.labels" -}}
app.kubernetes.io/name: {{ include "proglog-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "proglog-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "proglog-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "proglog-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "proglog-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The rules the controller needs on the namespaces it manages, and nothing more: exactly the
calls operator/src/controller makes. Owned kinds are written with server-side apply (patch;
create for the first apply) and watched (list, watch); nothing is ever replaced (no update) and
owned objects are deleted by garbage collection, not by the operator (no delete), except stale
per-pod external Services. scripts/chart-check.sh checks these against a real API server.
*/}}
{{- define "proglog-operator.managedRules" -}}
# The controller lists and watches clusters; the finalizer is added/removed with a JSON patch.
- apiGroups: ["proglog.dev"]
  resources: ["proglogclusters"]
  verbs: ["get", "list", "watch", "patch"]
# Status: merge patches (get reads nothing more than get on the cluster already does).
- apiGroups: ["proglog.dev"]
  resources: ["proglogclusters/status"]
  verbs: ["get", "patch"]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: ["proglog.dev"]
  resources: ["proglogclusters/finalizers"]
  verbs: ["update"]
# ProgLogUsers: read (their rules go into the cluster's ACL), status written, and the finalizers
# update an owner reference with blockOwnerDeletion (the user's certificate Secret) needs.
- apiGroups: ["proglog.dev"]
  resources: ["proglogusers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["proglog.dev"]
  resources: ["proglogusers/status"]
  verbs: ["get", "patch"]
- apiGroups: ["proglog.dev"]
  resources: ["proglogusers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "create", "patch"]
# Services: delete only for per-pod external Services no longer wanted.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Secrets are read by name only (no list/watch of every Secret).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Pods are deleted only to replace a member that stays down (spec.replacement); the StatefulSet
# re-creates them.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
# Rolling restarts evict one pod at a time (the PodDisruptionBudget still applies).
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
# Volume growth patches the claims; the finalizer deletes them only when retentionOnDelete is
# Delete (by label selector), a replacement with deleteVolume only the replaced pod's (by name).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "patch", "deletecollection"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
