{{/*
Everything the services have in common lives here, once: names, labels, the Deployment with its
probes and security settings, the Service and the PodDisruptionBudget. A service's template only
names the service:

  {{ include "kglab.app" (dict "root" $ "name" "auth") }}

and reads its block of values (.Values.<name>).
*/}}

{{- define "kglab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kglab.fullname" -}}
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

{{/* Name of one service's objects: <fullname>-<service>. Args: root, name. */}}
{{- define "kglab.componentName" -}}
{{- printf "%s-%s" (include "kglab.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select one service's pods; never change them on a running release. */}}
{{- define "kglab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kglab.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "kglab.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kglab.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kglab
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* <registry>/<repository>:<tag>, the tag falling back to image.tag, then to appVersion. */}}
{{- define "kglab.image" -}}
{{- $svc := index .root.Values .name }}
{{- $repository := $svc.image.repository }}
{{- if .root.Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repository }}
{{- end }}
{{- $tag := $svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/*
Security settings of every pod and container: a non-root user (the image's uid 10001), no
privilege escalation, no Linux capabilities, the runtime's default seccomp profile and a
read-only root filesystem (the only writable path is the /tmp emptyDir). Not configurable on
purpose: a service that needs more is a design change, not a value.
*/}}
{{- define "kglab.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kglab.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Probes: startup and liveness on /health (the process answers), readiness on /ready (its backends
answer), so a pod whose database is down leaves the Service without being restarted.
*/}}
{{- define "kglab.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /ready
    port: http
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}

{{/*
The container's environment: the common plain variables, the service's own (both rendered as
templates, so a value may name another service), then the Secret's keys. A key missing from the
Secret stops the pod from starting (CreateContainerConfigError) instead of running half-configured.
*/}}
{{- define "kglab.env" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .name }}
{{- $plain := merge (dict) ($svc.env | default dict) ($root.Values.env | default dict) }}
{{- $secret := merge (dict) ($svc.secretEnv | default dict) ($root.Values.commonSecretEnv | default dict) -}}
- name: KGLAB_PORT
  value: {{ $svc.port | quote }}
- name: KGLAB_METRICS_PORT
  value: {{ $root.Values.metrics.port | quote }}
- name: KGLAB_METRICS_HOST
  value: "0.0.0.0"
{{- range $key := keys $plain | sortAlpha }}
- name: {{ $key }}
  value: {{ tpl (toString (get $plain $key)) $root | quote }}
{{- end }}
{{- range $key := keys $secret | sortAlpha }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.existingSecret }}
      key: {{ get $secret $key }}
{{- end }}
{{- end }}

{{/* Deployment of one service. Args: root, name. */}}
{{- define "kglab.deployment" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .name }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kglab.componentName" . }}
  labels:
    {{- include "kglab.labels" . | nindent 4 }}
spec:
  {{- $uploadsClaim := "" }}
  {{- with $svc.uploads }}{{ $uploadsClaim = .existingClaim | default (ternary (printf "%s-uploads" (include "kglab.componentName" $)) "" (.create | default false)) }}{{ end }}
  {{- if and $svc.uploads (not $uploadsClaim) (gt (int $svc.replicas) 1) }}
  {{- fail (printf "%s.replicas is %d but %s.uploads.existingClaim is empty: every replica must mount the uploads volume (a ReadWriteMany claim), since a PATCH may reach any replica (adr/0019)" .name (int $svc.replicas) .name) }}
  {{- end }}
  {{- if not $root.Values.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "kglab.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "kglab.labels" . | nindent 8 }}
      {{- with $root.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        {{- include "kglab.podSecurityContext" . | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "kglab.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $svc.port }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
              protocol: TCP
          env:
            {{- include "kglab.env" . | nindent 12 }}
            {{- if $uploadsClaim }}
            - name: KGLAB_INGESTION_UPLOADS_DIR
              value: /var/lib/kglab/uploads
            {{- end }}
          {{- include "kglab.probes" . | nindent 10 }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- include "kglab.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $uploadsClaim }}
            - name: uploads
              mountPath: /var/lib/kglab/uploads
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        {{- if $uploadsClaim }}
        - name: uploads
          persistentVolumeClaim:
            claimName: {{ $uploadsClaim | quote }}
        {{- end }}
      # Replicas spread over nodes and zones, so one node drained or lost takes one replica.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" . | nindent 14 }}
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" . | nindent 14 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* ClusterIP Service of one service, on its own port. Args: root, name. */}}
{{- define "kglab.service" -}}
{{- $svc := index .root.Values .name }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "kglab.componentName" . }}
  labels:
    {{- include "kglab.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "kglab.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $svc.port }}
      targetPort: http
      protocol: TCP
    - name: metrics
      port: {{ .root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end }}

{{/* Scales a service between its replicas and autoscaling.maxReplicas on CPU. */}}
{{- define "kglab.horizontalPodAutoscaler" -}}
{{- $svc := index .root.Values .name }}
{{- $scaling := .root.Values.autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "kglab.componentName" . }}
  labels:
    {{- include "kglab.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "kglab.componentName" . }}
  minReplicas: {{ max 1 $svc.replicas }}
  maxReplicas: {{ max $svc.replicas $scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.targetCPUUtilizationPercentage }}
{{- end }}

{{/* Keeps one pod during voluntary disruptions (node drains) when there are two or more. */}}
{{- define "kglab.podDisruptionBudget" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "kglab.componentName" . }}
  labels:
    {{- include "kglab.labels" . | nindent 4 }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      {{- include "kglab.selectorLabels" . | nindent 6 }}
{{- end }}

{{/* All objects of one service, when it is enabled. Args: root, name. */}}
{{- define "kglab.app" -}}
{{- $svc := index .root.Values .name }}
{{- if $svc.enabled }}
{{ include "kglab.deployment" . }}
---
{{ include "kglab.service" . }}
{{- if gt (int $svc.replicas) 1 }}
---
{{ include "kglab.podDisruptionBudget" . }}
{{- end }}
{{- if and .root.Values.autoscaling.enabled (gt (int $svc.replicas) 0) }}
---
{{ include "kglab.horizontalPodAutoscaler" . }}
{{- end }}
{{- if .root.Values.networkPolicy.enabled }}
---
{{ include "kglab.networkPolicy" . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy peers of one kind of external server (networkPolicy.stores.<store>): its ports, to
the peers listed (none listed: those ports anywhere, for servers outside the cluster).
*/}}
{{- define "kglab.storeEgress" -}}
{{- $store := index .root.Values.networkPolicy.stores .store -}}
- ports:
    {{- range $store.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $store.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
What one service may send and receive (the namespace's default-deny policy refuses the rest):
in, its port from the gateway (the gateway's from networkPolicy.gatewayFrom, the vector
service's callers of the graph service) and its metrics port from networkPolicy.metricsFrom;
out, DNS, its own stores (.Values.<service>.stores) and the services it calls.
*/}}
{{- define "kglab.networkPolicy" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .name }}
{{- $np := $root.Values.networkPolicy }}
{{- $name := .name }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "kglab.componentName" . }}
  labels:
    {{- include "kglab.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "kglab.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - ports:
        - port: http
          protocol: TCP
      {{- if eq $name "gateway" }}
      {{- with $np.gatewayFrom }}
      from:
        {{- toYaml . | nindent 8 }}
        # helm test's pod
        - podSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" (dict "root" $root "name" "test") | nindent 14 }}
      {{- end }}
      {{- else }}
      from:
        - podSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" (dict "root" $root "name" "gateway") | nindent 14 }}
        {{- range $caller := list "vector" }}
        {{- if and (eq $name "graph") (index $root.Values $caller).enabled }}
        - podSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" (dict "root" $root "name" $caller) | nindent 14 }}
        {{- end }}
        {{- end }}
      {{- end }}
    - ports:
        - port: metrics
          protocol: TCP
      {{- with $np.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
      {{- with $np.dns }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- range $store := $svc.stores }}
    {{- include "kglab.storeEgress" (dict "root" $root "store" $store) | nindent 4 }}
    {{- end }}
    {{- range $callee := $svc.calls | default list }}
    - ports:
        - port: {{ (index $root.Values $callee).port }}
          protocol: TCP
      to:
        - podSelector:
            matchLabels:
              {{- include "kglab.selectorLabels" (dict "root" $root "name" $callee) | nindent 14 }}
    {{- end }}
    {{- if $svc.web }}
    # URL ingestion fetches public pages: public addresses only (the fetcher refuses internal
    # ones too; this holds even if it were wrong).
    - ports:
        {{- range $np.web.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      to:
        - ipBlock:
            cidr: {{ $np.web.cidr }}
            except:
              {{- toYaml $np.web.except | nindent 14 }}
    {{- end }}
{{- end }}
