{{/* Resource names follow the cluster's existing convention: <release>-<component>. */}}
{{- define "loco.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loco.selectorLabels" -}}
app.kubernetes.io/name: loco-lan
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "loco.labels" -}}
{{ include "loco.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The emulator's headless service name, also the StatefulSet's serviceName. */}}
{{- define "loco.emulatorService" -}}
{{- include "loco.name" (dict "root" . "component" "emulator") -}}
{{- end -}}

{{/* LAN modes that need NET_ADMIN and /dev/net/tun in the emulator container. */}}
{{- define "loco.lanNeedsNetAdmin" -}}
{{- has .Values.emulator.networkMode (list "bridge" "vxlan" "macvlan") -}}
{{- end -}}

{{- define "loco.image" -}}
{{- printf "%s:%s" .image .tag -}}
{{- end -}}
