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

{{- define "loco.image" -}}
{{- printf "%s:%s" .image .tag -}}
{{- end -}}

{{/* The Secret holding coturn's static-auth-secret (given, or made by the chart). */}}
{{- define "loco.turnSecret" -}}
{{- .Values.streaming.turn.secret | default (include "loco.name" (dict "root" . "component" "turn")) -}}
{{- end -}}

{{/* The ICE servers clients get: the ones given, and the chart's TURN server (credentials are
     added by the gateway per request, never written here). */}}
{{- define "loco.iceServers" -}}
{{- $servers := .Values.iceServers -}}
{{- $t := .Values.streaming.turn -}}
{{- if and .Values.streaming.enabled $t.enabled -}}
{{- $host := $t.host | default (printf "%s.%s.svc.cluster.local" (include "loco.name" (dict "root" . "component" "turn")) .Release.Namespace) -}}
{{- $servers = append $servers (dict "urls" (list (printf "turn:%s:%d?transport=udp" $host (int $t.port)) (printf "turn:%s:%d?transport=tcp" $host (int $t.port)))) -}}
{{- end -}}
{{- toJson $servers -}}
{{- end -}}

{{/* Every loco pod's security context: a high UID (10001, as in the images) that no node user has. */}}
{{- define "loco.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}
