{{/*
Names. The fullname is "aiplatform" for a release named aiplatform (the names the kustomize tree
uses), and is kept short enough for "<fullname>-<engine>" StatefulSet pods to be valid names.
*/}}
{{- define "aiplatform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "aiplatform.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Service and workload of engine .name: "<fullname>-<engine>". */}}
{{- define "aiplatform.engineFullname" -}}
{{- printf "%s-%s" (include "aiplatform.fullname" .root) .name }}
{{- end }}

{{/* Where the other pods reach engine .name. */}}
{{- define "aiplatform.engineUrl" -}}
{{- printf "http://%s:8000" (include "aiplatform.engineFullname" .) }}
{{- end }}

{{/* Fails on a mode the chart does not know, so a typo is not rendered as a monolith. */}}
{{- define "aiplatform.mode" -}}
{{- $mode := .Values.mode }}
{{- if not (has $mode (list "monolith" "microservices")) }}
{{- fail (printf "mode must be monolith or microservices, not %q" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/* Labels of an object of component .component (gateway or an engine name). */}}
{{- define "aiplatform.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "aiplatform.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: aiplatform
{{- end }}

{{- define "aiplatform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiplatform.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image; .cuda selects the CUDA build. */}}
{{- define "aiplatform.image" -}}
{{- $image := .root.Values.image }}
{{- $tag := default .root.Chart.AppVersion $image.tag }}
{{- if .cuda }}
{{- $tag = printf "%s%s" $tag $image.cudaTagSuffix }}
{{- end }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}

{{/* .resources, plus one NVIDIA GPU when .cuda. */}}
{{- define "aiplatform.resources" -}}
{{- $resources := deepCopy .resources }}
{{- if .cuda }}
{{- $gpu := dict "nvidia.com/gpu" 1 }}
{{- $_ := set $resources "requests" (merge (deepCopy ($resources.requests | default dict)) $gpu) }}
{{- $_ = set $resources "limits" (merge (deepCopy ($resources.limits | default dict)) $gpu) }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/*
Startup and liveness probe /health (the process serves HTTP; startup allows five minutes of model
loading); readiness probes .readyPath: /ready on the pods that load engines, /health on the
microservices gateway, whose /ready fails whenever any engine pod is down.
*/}}
{{- define "aiplatform.probes" -}}
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: {{ .readyPath }}
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{- define "aiplatform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "aiplatform.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
Settings read from keys of the Secret auth.existingSecret (created by the operator), as
aiplatform.deploy.profiles lists them: [variable, key, optional]. Every container of the
microservices mode gets them all: authentication stays on, the gateway presents the service
token to its pods, and users, keys and sessions live in the PostgreSQL database every gateway
replica and pod shares. The monolith keeps its own store on its volume and reads only the first
admin's password, when the Secret has one. .split selects the microservices list.
*/}}
{{- define "aiplatform.authEnv" -}}
{{- $secret := required "auth.existingSecret must name the Secret with the authentication settings" .root.Values.auth.existingSecret }}
{{- $adminPassword := list "AIPLATFORM_AUTH__ADMIN_PASSWORD" "admin-password" true }}
{{- $metricsToken := list "AIPLATFORM_METRICS__TOKEN" "metrics-token" true }}
{{- $settings := list $adminPassword $metricsToken }}
{{- if .split }}
{{- $settings = list
      (list "AIPLATFORM_AUTH__SERVICE_TOKEN" "service-token" false)
      (list "AIPLATFORM_AUTH__JWT_SECRET" "jwt-secret" false)
      (list "AIPLATFORM_AUTH__DATABASE_URL" "database-url" false)
      $adminPassword
      (list "AIPLATFORM_LIMITS__REDIS_URL" "redis-url" true)
      $metricsToken }}
{{- end }}
{{- range $settings }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ index . 1 }}
      {{- if index . 2 }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* AIPLATFORM_ENGINES__<NAME>__ENABLED=false for each disabled engine. */}}
{{- define "aiplatform.disabledEnv" -}}
{{- range $name, $engine := .Values.engines }}
{{- if not $engine.enabled }}
- name: AIPLATFORM_ENGINES__{{ upper $name }}__ENABLED
  value: "false"
{{- end }}
{{- end }}
{{- end }}

{{/* The URL of each enabled engine in .names (a list). */}}
{{- define "aiplatform.urlEnv" -}}
{{- $root := .root }}
{{- range $name := .names }}
{{- if (get $root.Values.engines $name).enabled }}
- name: AIPLATFORM_ENGINES__{{ upper $name }}__URL
  value: {{ include "aiplatform.engineUrl" (dict "root" $root "name" $name) | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The CUDA settings (cudaEnv: name/value pairs) of each enabled accelerated engine in .names,
when gpu.enabled. */}}
{{- define "aiplatform.cudaEnv" -}}
{{- $root := .root }}
{{- if $root.Values.gpu.enabled }}
{{- range $name := .names }}
{{- $engine := get $root.Values.engines $name }}
{{- if and $engine.enabled $engine.accelerated }}
{{- range $engine.cudaEnv }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether any enabled engine in .names gets the GPU ("true" or ""). */}}
{{- define "aiplatform.cuda" -}}
{{- $root := .root }}
{{- if $root.Values.gpu.enabled }}
{{- range $name := .names }}
{{- $engine := get $root.Values.engines $name }}
{{- if and $engine.enabled $engine.accelerated }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aiplatform.configChecksum" -}}
{{- if .Values.config -}}
checksum/config: {{ .Values.config | sha256sum }}
{{- end }}
{{- end }}

{{/*
The pod template of every workload. Arguments: root, component, args (list), env (rendered
list items), resources, cuda (bool), readyPath, data (mount the volume "data" at /data),
scratch (that volume is the pod's own emptyDir, not a StatefulSet's claim).
*/}}
{{- define "aiplatform.podTemplate" -}}
{{- $root := .root }}
{{- $values := $root.Values -}}
metadata:
  labels:
    {{- include "aiplatform.labels" . | nindent 4 }}
  {{- with include "aiplatform.configChecksum" $root }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  automountServiceAccountToken: false
  securityContext:
    {{- include "aiplatform.podSecurityContext" . | nindent 4 }}
  {{- if .cuda }}
  {{- with $values.gpu.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.gpu.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  containers:
    - name: aiplatform
      image: {{ include "aiplatform.image" . | quote }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      ports:
        - name: http
          containerPort: 8000
          protocol: TCP
      {{- $env := trim .env }}
      {{- if or $env $values.config $values.extraEnv }}
      env:
        {{- with $env }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- if $values.config }}
        {{- include "aiplatform.configEnv" $root | nindent 8 }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      envFrom:
        - secretRef:
            name: {{ $values.secretName }}
            optional: true
      resources:
        {{- include "aiplatform.resources" . | nindent 8 }}
      securityContext:
        {{- include "aiplatform.containerSecurityContext" . | nindent 8 }}
      {{- include "aiplatform.probes" . | nindent 6 }}
      {{- if or .data $values.config }}
      volumeMounts:
        {{- if .data }}
        - name: data
          mountPath: /data
        {{- end }}
        {{- if $values.config }}
        - name: config
          mountPath: /etc/aiplatform
          readOnly: true
        {{- end }}
      {{- end }}
  {{- if or .scratch $values.config }}
  volumes:
    {{- if .scratch }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if $values.config }}
    - name: config
      configMap:
        name: {{ include "aiplatform.fullname" $root }}-config
    {{- end }}
  {{- end }}
{{- end }}

{{- define "aiplatform.configEnv" -}}
{{- if .Values.config -}}
- name: AIPLATFORM_CONFIG
  value: /etc/aiplatform/config.toml
{{- end }}
{{- end }}

{{/* The "data" volume claim of a StatefulSet. */}}
{{- define "aiplatform.dataClaim" -}}
- metadata:
    name: data
  spec:
    accessModes:
      - ReadWriteOnce
    {{- with .Values.persistence.storageClass }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .Values.persistence.size }}
{{- end }}

{{/* A CPU-driven HorizontalPodAutoscaler of Deployment .target with .autoscaling's bounds. */}}
{{- define "aiplatform.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .target }}
  labels:
    {{- include "aiplatform.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .target }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
{{- end }}

{{/* Whether engine .engine (named .name) is scaled by an HPA ("true" or ""). */}}
{{- define "aiplatform.engineAutoscaled" -}}
{{- $autoscaling := .engine.autoscaling | default dict }}
{{- if $autoscaling.enabled }}
{{- if include "aiplatform.engineStateful" . }}
{{- fail (printf "engines.%s keeps data in a store with one writer: it runs one replica and cannot autoscale" .name) }}
{{- end }}
{{- if not (and $autoscaling.minReplicas $autoscaling.maxReplicas $autoscaling.targetCPUUtilizationPercentage) }}
{{- fail (printf "engines.%s.autoscaling needs minReplicas, maxReplicas and targetCPUUtilizationPercentage" .name) }}
{{- end }}
{{- if gt ($autoscaling.minReplicas | int) ($autoscaling.maxReplicas | int) }}
{{- fail (printf "engines.%s.autoscaling: minReplicas is more than maxReplicas" .name) }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/*
Whether engine .engine (named .name) keeps its store in an external PostgreSQL database
(.engine.postgres.enabled: "true" or ""). Only RAG can; the database URL is read from key
postgres.secretKey of the Secret postgres.existingSecret, which the operator creates.
*/}}
{{- define "aiplatform.enginePostgres" -}}
{{- $postgres := .engine.postgres | default dict }}
{{- if $postgres.enabled }}
{{- if ne .name "rag" }}
{{- fail (printf "engines.%s.postgres: only rag can keep its store in PostgreSQL" .name) }}
{{- end }}
{{- if not $postgres.existingSecret }}
{{- fail (printf "engines.%s.postgres.existingSecret must name the Secret with the database URL" .name) }}
{{- end }}
{{- if not $postgres.secretKey }}
{{- fail (printf "engines.%s.postgres.secretKey must name the key of %s holding the database URL" .name $postgres.existingSecret) }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/*
Whether engine .engine (named .name) keeps data in local files with one writer ("true" or ""):
a StatefulSet of one replica with a volume. An engine whose store is in PostgreSQL does not.
*/}}
{{- define "aiplatform.engineStateful" -}}
{{- if and .engine.keepsData (not (include "aiplatform.enginePostgres" .)) }}
{{- true }}
{{- end }}
{{- end }}

{{/*
The replicas of engine .engine (named .name) that keeps its store in PostgreSQL: at least, and
without autoscaling exactly, .engine.replicas; with autoscaling, its minReplicas.
*/}}
{{- define "aiplatform.engineLeastReplicas" -}}
{{- $autoscaling := .engine.autoscaling | default dict }}
{{- $least := ternary $autoscaling.minReplicas .engine.replicas (include "aiplatform.engineAutoscaled" . | eq "true") | int }}
{{- if lt $least 1 }}
{{- fail (printf "engines.%s needs at least one replica" .name) }}
{{- end }}
{{- $least }}
{{- end }}

{{/*
The settings of each enabled engine in .names (a list) that keeps its store in PostgreSQL: the
store, and the database URL from its Secret (never a value in a manifest).
*/}}
{{- define "aiplatform.storeEnv" -}}
{{- $root := .root }}
{{- range $name := .names }}
{{- $engine := get $root.Values.engines $name }}
{{- if and $engine.enabled (include "aiplatform.enginePostgres" (dict "name" $name "engine" $engine)) }}
- name: AIPLATFORM_ENGINES__{{ upper $name }}__STORE
  value: "postgres"
- name: AIPLATFORM_ENGINES__{{ upper $name }}__DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $engine.postgres.existingSecret | quote }}
      key: {{ $engine.postgres.secretKey }}
{{- end }}
{{- end }}
{{- end }}
