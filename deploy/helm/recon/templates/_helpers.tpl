{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "recon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: <release>-<chart>, or the release name alone when
it already contains the chart name.
*/}}
{{- define "recon.fullname" -}}
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

{{- define "recon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector of the server pods (Deployment, Service, PodDisruptionBudget, ServiceMonitor).
The migration Job's pod carries component=migration, so no selector picks it up.
*/}}
{{- define "recon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "recon.commonLabels" -}}
helm.sh/chart: {{ include "recon.chart" . }}
app.kubernetes.io/name: {{ include "recon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recon
{{- end }}

{{- define "recon.labels" -}}
helm.sh/chart: {{ include "recon.chart" . }}
{{ include "recon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recon
{{- end }}

{{- define "recon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "recon.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Shutdown arithmetic: RECON_SHUTDOWN_GRACE_S rounded up, and the pod's
terminationGracePeriodSeconds, which must leave room for the preStop pause and the
grace period (the chart fails rather than let Kubernetes SIGKILL running jobs).
*/}}
{{- define "recon.shutdownGraceSeconds" -}}
{{- $raw := toString (.Values.config.RECON_SHUTDOWN_GRACE_S | default "20") }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?$" $raw) }}
{{- fail (printf "config.RECON_SHUTDOWN_GRACE_S must be a number of seconds, got %q" $raw) }}
{{- end }}
{{- $raw | float64 | ceil | int }}
{{- end }}

{{- define "recon.terminationGracePeriodSeconds" -}}
{{- $grace := include "recon.shutdownGraceSeconds" . | int }}
{{- $preStop := .Values.preStopSleepSeconds | default 0 | int }}
{{- $min := add $grace $preStop 1 }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $grace $preStop 10 }}
{{- else }}
{{- $set := .Values.terminationGracePeriodSeconds | int }}
{{- if lt $set $min }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed RECON_SHUTDOWN_GRACE_S (%d) + preStopSleepSeconds (%d)" $set $grace $preStop) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/*
One env entry per credential, each from a Secret key. `only` (a list) limits the set.
*/}}
{{- define "recon.credentialEnv" -}}
{{- $only := .only }}
{{- range $name := keys .root.Values.credentials | sortAlpha }}
{{- if or (not $only) (has $name $only) }}
{{- $c := index $.root.Values.credentials $name }}
{{- if $c }}
{{- $secret := required (printf "credentials.%s.secretName is required" $name) $c.secretName }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ tpl $secret $.root | quote }}
      key: {{ $c.key | default $name | quote }}
      optional: {{ $c.optional | default false }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Plain settings from .Values.config (empty ones left out). A credential name here is
refused: credentials only come from Secrets.
*/}}
{{- define "recon.configEnv" -}}
{{- range $name := keys .Values.config | sortAlpha }}
{{- if hasKey $.Values.credentials $name }}
{{- fail (printf "%s is a credential: set it through credentials.%s (an existing Secret), not config" $name $name) }}
{{- end }}
{{- $v := index $.Values.config $name }}
{{- if not (kindIs "invalid" $v) }}
{{- if ne (toString $v) "" }}
- name: {{ $name }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
