//! Pinned container and sandbox hashes.
//!
//! The hash of a container spec goes into the `io.kubernetes.container.hash`
//! label of every container podvisor creates, and the planner compares it with
//! the hash of the desired spec: when they differ, the container is replaced
//! (for the sandbox hash: the whole pod is recreated). So if a new build
//! computes a different hash for an unchanged manifest, upgrading podvisor
//! restarts every running pod on the node.
//!
//! This file runs a varied set of manifests through the real pipeline (the
//! same `manifest::parse_file` the daemon uses, defaults included) and
//! compares every container, init container and sandbox hash with values
//! written down once from the code as it was. Do not update a value here
//! unless restarting every pod on upgrade is intended.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use podvisor::manifest::{parse_file, ManifestPod};
use podvisor::model::naming::{container_hash, sandbox_hash};

/// The infra image the sandbox hashes are computed with (the default of
/// `pod_infra_container_image`).
const INFRA_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The container name that stands for the sandbox in [`EXPECTED`].
const SANDBOX: &str = "POD";

const MINIMAL: &str = "apiVersion: v1
kind: Pod
metadata:
  name: minimal
spec:
  containers:
  - name: app
    image: nginx:1.27
";

/// The same container as [`MINIMAL`], with every default written out: the
/// container hash must be the same.
const EXPLICIT_DEFAULTS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: explicit-defaults
  namespace: default
spec:
  restartPolicy: Always
  dnsPolicy: ClusterFirst
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: nginx:1.27
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
";

const UNTAGGED_IMAGE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: untagged-image
spec:
  containers:
  - name: app
    image: busybox
    command: [\"sleep\", \"3600\"]
";

const LATEST_TAG: &str = "apiVersion: v1
kind: Pod
metadata:
  name: latest-tag
spec:
  containers:
  - name: app
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: [\"sleep\", \"3600\"]
";

const DIGEST_IMAGE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: digest-image
spec:
  containers:
  - name: app
    image: busybox@sha256:1487d0af5f52b4ba31c7e465126ee2123fe3f2305d638e7827681e7cf6c83d5e
    imagePullPolicy: Never
    command: [\"sleep\", \"3600\"]
";

const PULL_ALWAYS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: pull-always
spec:
  containers:
  - name: app
    image: localhost:5000/tools/app:2.1
    imagePullPolicy: Always
  - name: registry-latest
    image: localhost:5000/tools/app:latest
";

const MULTI_CONTAINER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: multi-container
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports:
    - containerPort: 80
  - name: sidecar
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"while true; do date; sleep 5; done\"]
  - name: shipper
    image: fluent/fluent-bit:3.0
    args: [\"-i\", \"dummy\", \"-o\", \"stdout\"]
";

const INIT_CONTAINERS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: init-containers
spec:
  initContainers:
  - name: fetch
    image: busybox:1.36
    command: [\"wget\", \"-O\", \"/work/index.html\", \"http://example.com\"]
    volumeMounts:
    - name: work
      mountPath: /work
  - name: migrate
    image: migrate/migrate
    args: [\"-path\", \"/migrations\", \"up\"]
  containers:
  - name: app
    image: nginx:1.27
    volumeMounts:
    - name: work
      mountPath: /usr/share/nginx/html
  volumes:
  - name: work
    emptyDir: {}
";

const PORTS_TCP: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ports-tcp
spec:
  containers:
  - name: app
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 80
    - name: https
      containerPort: 443
      protocol: TCP
";

const PORTS_HOST_UDP: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ports-host-udp
spec:
  containers:
  - name: dns
    image: coredns/coredns:1.11.1
    args: [\"-conf\", \"/etc/coredns/Corefile\"]
    ports:
    - name: dns
      containerPort: 53
      hostPort: 5353
      protocol: UDP
    - name: dns-tcp
      containerPort: 53
      hostPort: 5353
      protocol: TCP
    - name: metrics
      containerPort: 9153
      hostIP: 127.0.0.1
      hostPort: 9153
";

/// The same ports as [`PORTS_TCP`], spread over two containers in another
/// order: the sandbox hash must be the same.
const PORTS_SPLIT: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ports-split
spec:
  containers:
  - name: tls
    image: nginx:1.27
    ports:
    - name: https
      containerPort: 443
  - name: plain
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 80
";

const HOST_NETWORK: &str = "apiVersion: v1
kind: Pod
metadata:
  name: host-network
spec:
  hostNetwork: true
  containers:
  - name: exporter
    image: prom/node-exporter:v1.8.1
    args: [\"--path.rootfs=/host\"]
    ports:
    - name: metrics
      containerPort: 9100
      hostPort: 9100
";

const HOST_NETWORK_NO_PORTS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: host-network-no-ports
spec:
  hostNetwork: true
  containers:
  - name: agent
    image: busybox:1.36
    command: [\"sleep\", \"infinity\"]
";

const ENV: &str = "apiVersion: v1
kind: Pod
metadata:
  name: env
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"env; sleep 3600\"]
    env:
    - name: GREETING
      value: hello world
    - name: EMPTY
      value: \"\"
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_IP
      valueFrom:
        fieldRef:
          apiVersion: v1
          fieldPath: status.podIP
    - name: MEM_LIMIT_MB
      valueFrom:
        resourceFieldRef:
          containerName: app
          resource: limits.memory
          divisor: 1Mi
    - name: CPU_REQUEST
      valueFrom:
        resourceFieldRef:
          resource: requests.cpu
          divisor: 1m
    - name: MESSAGE
      value: $(GREETING) from $(POD_NAME)
    resources:
      requests:
        cpu: 100m
      limits:
        memory: 32Mi
";

const RESOURCES: &str = "apiVersion: v1
kind: Pod
metadata:
  name: resources
spec:
  containers:
  - name: app
    image: nginx:1.27
    resources:
      requests:
        cpu: 250m
        memory: 64Mi
      limits:
        cpu: \"1\"
        memory: 128Mi
  - name: burst
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
    resources:
      limits:
        cpu: 500m
        memory: 1Gi
";

const PROBE_EXEC: &str = "apiVersion: v1
kind: Pod
metadata:
  name: probe-exec
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"touch /tmp/healthy; sleep 3600\"]
    livenessProbe:
      exec:
        command: [\"cat\", \"/tmp/healthy\"]
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 3
      successThreshold: 1
";

const PROBE_HTTP: &str = "apiVersion: v1
kind: Pod
metadata:
  name: probe-http
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 80
    readinessProbe:
      httpGet:
        path: /healthz
        port: http
        scheme: HTTP
        httpHeaders:
        - name: X-Probe
          value: readiness
      periodSeconds: 5
      successThreshold: 2
      failureThreshold: 1
    startupProbe:
      httpGet:
        path: /
        port: 80
      failureThreshold: 30
      periodSeconds: 2
";

const PROBE_TCP: &str = "apiVersion: v1
kind: Pod
metadata:
  name: probe-tcp
spec:
  containers:
  - name: redis
    image: redis:7.2
    ports:
    - name: redis
      containerPort: 6379
    livenessProbe:
      tcpSocket:
        port: redis
      initialDelaySeconds: 15
      periodSeconds: 20
      terminationGracePeriodSeconds: 10
    readinessProbe:
      tcpSocket:
        port: 6379
      timeoutSeconds: 1
";

const LIFECYCLE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: lifecycle
spec:
  terminationGracePeriodSeconds: 45
  containers:
  - name: app
    image: nginx:1.27
    lifecycle:
      postStart:
        exec:
          command: [\"sh\", \"-c\", \"echo started > /usr/share/message\"]
      preStop:
        exec:
          command: [\"nginx\", \"-s\", \"quit\"]
  - name: helper
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
    lifecycle:
      preStop:
        httpGet:
          path: /shutdown
          port: 8080
";

const SECURITY_CONTEXT: &str = "apiVersion: v1
kind: Pod
metadata:
  name: security-context
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
    securityContext:
      runAsUser: 2000
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        add: [\"NET_ADMIN\", \"SYS_TIME\"]
        drop: [\"ALL\"]
  - name: privileged
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
    securityContext:
      privileged: true
";

const VOLUMES_EMPTY_DIR: &str = "apiVersion: v1
kind: Pod
metadata:
  name: volumes-empty-dir
spec:
  containers:
  - name: writer
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"date > /cache/now; sleep 3600\"]
    volumeMounts:
    - name: cache
      mountPath: /cache
    - name: scratch
      mountPath: /scratch
      subPath: writer
  - name: reader
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
    volumeMounts:
    - name: cache
      mountPath: /cache
      readOnly: true
  volumes:
  - name: cache
    emptyDir:
      medium: Memory
      sizeLimit: 64Mi
  - name: scratch
    emptyDir:
      sizeLimit: 1Gi
";

const VOLUMES_HOST_PATH: &str = "apiVersion: v1
kind: Pod
metadata:
  name: volumes-host-path
spec:
  containers:
  - name: tail
    image: busybox:1.36
    command: [\"tail\", \"-F\", \"/host/log/syslog\"]
    volumeMounts:
    - name: logs
      mountPath: /host/log
      readOnly: true
    - name: data
      mountPath: /data
  volumes:
  - name: logs
    hostPath:
      path: /var/log
      type: Directory
  - name: data
    hostPath:
      path: /srv/podvisor-data
      type: DirectoryOrCreate
";

const COMMAND_ARGS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: command-args
spec:
  containers:
  - name: app
    image: python:3.12-slim
    workingDir: /srv/app
    command: [\"python\", \"-m\", \"http.server\"]
    args: [\"--bind\", \"0.0.0.0\", \"$(PORT)\"]
    env:
    - name: PORT
      value: \"8000\"
    stdin: true
    tty: true
";

const TERMINATION_MESSAGE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: termination-message
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"echo bye > /tmp/msg; exit 1\"]
    terminationMessagePath: /tmp/msg
    terminationMessagePolicy: FallbackToLogsOnError
";

const RESTART_NEVER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: restart-never
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: job
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"echo done\"]
";

const RESTART_ON_FAILURE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: restart-on-failure
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 120
  initContainers:
  - name: wait
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"sleep 2\"]
  containers:
  - name: job
    image: busybox:1.36
    command: [\"sh\", \"-c\", \"exit $((RANDOM % 2))\"]
";

const LABELS_ANNOTATIONS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: labels-annotations
  labels:
    app: web
    tier: frontend
    app.kubernetes.io/version: \"1.27\"
  annotations:
    podvisor.io/owner: platform-team
    description: \"a pod with labels and annotations\"
spec:
  containers:
  - name: app
    image: nginx:1.27
";

const OTHER_NAMESPACE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: other-namespace
  namespace: kube-system
spec:
  priorityClassName: system-node-critical
  hostNetwork: true
  containers:
  - name: proxy
    image: registry.k8s.io/kube-proxy:v1.30.0
    command: [\"/usr/local/bin/kube-proxy\", \"--v=2\"]
    securityContext:
      privileged: true
";

/// Two pods in one file, with a leading `---`, a comment and an empty document.
const MULTI_DOCUMENT: &str = "# two pods in one file
---
apiVersion: v1
kind: Pod
metadata:
  name: multi-doc-first
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
---
---
apiVersion: v1
kind: Pod
metadata:
  name: multi-doc-second
  namespace: ops
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [\"sleep\", \"7200\"]
    ports:
    - containerPort: 8080
";

/// A `v1` `List` of two pods, as `kubectl get -o yaml` writes.
const POD_LIST: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: list-item-a
  spec:
    containers:
    - name: app
      image: alpine:3.20
      command: [\"sleep\", \"3600\"]
- apiVersion: v1
  kind: Pod
  metadata:
    name: list-item-b
  spec:
    restartPolicy: Never
    containers:
    - name: app
      image: alpine:3.20
      command: [\"true\"]
";

const JSON_SIMPLE: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "json-simple"},
  "spec": {
    "containers": [
      {"name": "app", "image": "httpd:2.4", "ports": [{"containerPort": 80}]}
    ]
  }
}"#;

const JSON_FULL: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "json-full",
    "namespace": "apps",
    "labels": {"app": "api"}
  },
  "spec": {
    "hostNetwork": false,
    "restartPolicy": "OnFailure",
    "initContainers": [
      {
        "name": "setup",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo ready > /data/ready"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
      }
    ],
    "containers": [
      {
        "name": "api",
        "image": "ghcr.io/example/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "args": ["serve", "--port=8443"],
        "ports": [{"name": "https", "containerPort": 8443, "protocol": "TCP"}],
        "env": [
          {"name": "MODE", "value": "production"},
          {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ],
        "resources": {
          "requests": {"cpu": "200m", "memory": "256Mi"},
          "limits": {"memory": "512Mi"}
        },
        "readinessProbe": {
          "httpGet": {"path": "/ready", "port": 8443, "scheme": "HTTPS"},
          "periodSeconds": 3
        },
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]
      }
    ],
    "volumes": [{"name": "data", "emptyDir": {}}]
  }
}"#;

/// Every manifest, as a file name (its extension picks YAML or JSON) and its text.
const MANIFESTS: &[(&str, &str)] = &[
    ("minimal.yaml", MINIMAL),
    ("explicit-defaults.yaml", EXPLICIT_DEFAULTS),
    ("untagged-image.yaml", UNTAGGED_IMAGE),
    ("latest-tag.yml", LATEST_TAG),
    ("digest-image.yaml", DIGEST_IMAGE),
    ("pull-always.yaml", PULL_ALWAYS),
    ("multi-container.yaml", MULTI_CONTAINER),
    ("init-containers.yaml", INIT_CONTAINERS),
    ("ports-tcp.yaml", PORTS_TCP),
    ("ports-host-udp.yaml", PORTS_HOST_UDP),
    ("ports-split.yaml", PORTS_SPLIT),
    ("host-network.yaml", HOST_NETWORK),
    ("host-network-no-ports.yaml", HOST_NETWORK_NO_PORTS),
    ("env.yaml", ENV),
    ("resources.yaml", RESOURCES),
    ("probe-exec.yaml", PROBE_EXEC),
    ("probe-http.yaml", PROBE_HTTP),
    ("probe-tcp.yaml", PROBE_TCP),
    ("lifecycle.yaml", LIFECYCLE),
    ("security-context.yaml", SECURITY_CONTEXT),
    ("volumes-empty-dir.yaml", VOLUMES_EMPTY_DIR),
    ("volumes-host-path.yaml", VOLUMES_HOST_PATH),
    ("command-args.yaml", COMMAND_ARGS),
    ("termination-message.yaml", TERMINATION_MESSAGE),
    ("restart-never.yaml", RESTART_NEVER),
    ("restart-on-failure.yaml", RESTART_ON_FAILURE),
    ("labels-annotations.yaml", LABELS_ANNOTATIONS),
    ("other-namespace.yaml", OTHER_NAMESPACE),
    ("multi-document.yaml", MULTI_DOCUMENT),
    ("pod-list.yaml", POD_LIST),
    ("json-simple.json", JSON_SIMPLE),
    ("json-full.json", JSON_FULL),
];

/// `(pod name, container name or "POD" for the sandbox, hash)`, computed once
/// from the code as it was when this file was written. Never edit a value:
/// a changed hash restarts every running pod on upgrade.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("minimal", "POD", "26e2860d77a1666e"),
    ("minimal", "app", "219be6c6709f4454"),
    ("explicit-defaults", "POD", "26e2860d77a1666e"),
    ("explicit-defaults", "app", "219be6c6709f4454"),
    ("untagged-image", "POD", "26e2860d77a1666e"),
    ("untagged-image", "app", "ae5f8045f991a4a9"),
    ("latest-tag", "POD", "26e2860d77a1666e"),
    ("latest-tag", "app", "a0244a3321d3a3a8"),
    ("digest-image", "POD", "26e2860d77a1666e"),
    ("digest-image", "app", "3cfdf2b7132e32a3"),
    ("pull-always", "POD", "26e2860d77a1666e"),
    ("pull-always", "app", "8c036a5db2ee9177"),
    ("pull-always", "registry-latest", "d72ad4a4b453b4bc"),
    ("multi-container", "POD", "357724e4ab16780f"),
    ("multi-container", "web", "9167cbff0f0d7787"),
    ("multi-container", "sidecar", "d14908041039343b"),
    ("multi-container", "shipper", "1f9db9e76250eb28"),
    ("init-containers", "POD", "26e2860d77a1666e"),
    ("init-containers", "fetch", "93aad74c411d150a"),
    ("init-containers", "migrate", "6b991063088b9e60"),
    ("init-containers", "app", "de7274ce6b91f9d2"),
    ("ports-tcp", "POD", "8a44eb18bd345089"),
    ("ports-tcp", "app", "6dc48bc9bf37fe40"),
    ("ports-host-udp", "POD", "863f6c4a24ba01d6"),
    ("ports-host-udp", "dns", "3d6439c9974069ea"),
    ("ports-split", "POD", "8a44eb18bd345089"),
    ("ports-split", "tls", "6254f3a13f0e8c48"),
    ("ports-split", "plain", "b07c6187b90e0bf9"),
    ("host-network", "POD", "d242954e80cf0d9d"),
    ("host-network", "exporter", "8599c6a521693645"),
    ("host-network-no-ports", "POD", "8150ad96344ceda2"),
    ("host-network-no-ports", "agent", "638982a178dddf11"),
    ("env", "POD", "26e2860d77a1666e"),
    ("env", "app", "220a442fa512b591"),
    ("resources", "POD", "26e2860d77a1666e"),
    ("resources", "app", "8c18a4806b596808"),
    ("resources", "burst", "c2a5ae77fba0a9f2"),
    ("probe-exec", "POD", "26e2860d77a1666e"),
    ("probe-exec", "app", "82155cba036a6a92"),
    ("probe-http", "POD", "dc70c5b038c1740e"),
    ("probe-http", "web", "ece150a3a7da07b5"),
    ("probe-tcp", "POD", "361b6cbae233f62e"),
    ("probe-tcp", "redis", "9ea7bb8e69a0eec7"),
    ("lifecycle", "POD", "26e2860d77a1666e"),
    ("lifecycle", "app", "e140e973bb60848b"),
    ("lifecycle", "helper", "862b076b4b307cd6"),
    ("security-context", "POD", "26e2860d77a1666e"),
    ("security-context", "app", "ce185830820ccf72"),
    ("security-context", "privileged", "c5a699ddc4ce451e"),
    ("volumes-empty-dir", "POD", "26e2860d77a1666e"),
    ("volumes-empty-dir", "writer", "3c900193d0a5946d"),
    ("volumes-empty-dir", "reader", "63480f4ec5785554"),
    ("volumes-host-path", "POD", "26e2860d77a1666e"),
    ("volumes-host-path", "tail", "4b80ca9649593723"),
    ("command-args", "POD", "26e2860d77a1666e"),
    ("command-args", "app", "fd22662dfe79e403"),
    ("termination-message", "POD", "26e2860d77a1666e"),
    ("termination-message", "app", "c7c2535e47dd8b38"),
    ("restart-never", "POD", "26e2860d77a1666e"),
    ("restart-never", "job", "38a515f85211019e"),
    ("restart-on-failure", "POD", "26e2860d77a1666e"),
    ("restart-on-failure", "wait", "f1dfa8f328b11e9d"),
    ("restart-on-failure", "job", "e6a1d8fb63ed7772"),
    ("labels-annotations", "POD", "26e2860d77a1666e"),
    ("labels-annotations", "app", "219be6c6709f4454"),
    ("other-namespace", "POD", "8150ad96344ceda2"),
    ("other-namespace", "proxy", "0896f7bcf2aceea7"),
    ("multi-doc-first", "POD", "26e2860d77a1666e"),
    ("multi-doc-first", "app", "9438dfcc9ba128f1"),
    ("multi-doc-second", "POD", "14c28d01367a8ab1"),
    ("multi-doc-second", "app", "94cfd179bc631107"),
    ("list-item-a", "POD", "26e2860d77a1666e"),
    ("list-item-a", "app", "094184b2e7fa1abf"),
    ("list-item-b", "POD", "26e2860d77a1666e"),
    ("list-item-b", "app", "68d36c33c87dd337"),
    ("json-simple", "POD", "357724e4ab16780f"),
    ("json-simple", "app", "c1d87559493c8a19"),
    ("json-full", "POD", "3968cc0eb255b48d"),
    ("json-full", "setup", "ea1856aad3d57fdb"),
    ("json-full", "api", "275a3be148662d57"),
];

/// Parses every manifest as the daemon does; panics naming the file if one
/// does not load.
fn parse_all() -> Vec<ManifestPod> {
    let mut pods = Vec::new();
    for (file, text) in MANIFESTS {
        let parsed = parse_file(Path::new(file), text)
            .unwrap_or_else(|e| panic!("manifest {file} does not load: {e}"));
        assert!(!parsed.is_empty(), "manifest {file} holds no pod");
        pods.extend(parsed);
    }
    pods
}

/// Every hash of every pod, in manifest order: `(pod, container or POD, hash)`
/// for the sandbox, then the init containers, then the containers.
fn compute() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for mp in parse_all() {
        let pod = mp.name().to_owned();
        out.push((
            pod.clone(),
            SANDBOX.to_owned(),
            sandbox_hash(&mp.pod, INFRA_IMAGE),
        ));
        let spec = mp.pod.spec.as_ref().expect("a parsed pod has a spec");
        let init = spec.init_containers.iter().flatten();
        for c in init.chain(&spec.containers) {
            out.push((pod.clone(), c.name.clone(), container_hash(c)));
        }
    }
    out
}

#[test]
fn hashes_match_pinned_values() {
    let actual = compute();
    let actual_map: BTreeMap<(&str, &str), &str> = actual
        .iter()
        .map(|(p, c, h)| ((p.as_str(), c.as_str()), h.as_str()))
        .collect();
    assert_eq!(
        actual_map.len(),
        actual.len(),
        "two pods share a name, or a pod has two containers of one name: the table \
         cannot tell them apart"
    );
    let expected_map: BTreeMap<(&str, &str), &str> =
        EXPECTED.iter().map(|&(p, c, h)| ((p, c), h)).collect();
    assert_eq!(
        expected_map.len(),
        EXPECTED.len(),
        "EXPECTED names a (pod, container) twice"
    );

    let mut diff = Vec::new();
    for (&(pod, container), &expected) in &expected_map {
        match actual_map.get(&(pod, container)) {
            Some(&actual) if actual == expected => {}
            Some(&actual) => diff.push(format!(
                "  pod {pod:?} container {container:?}: expected {expected}, actual {actual}"
            )),
            None => diff.push(format!(
                "  pod {pod:?} container {container:?}: expected {expected}, actual <not computed: \
                 no such pod or container in MANIFESTS>"
            )),
        }
    }
    for (&(pod, container), &actual) in &actual_map {
        if !expected_map.contains_key(&(pod, container)) {
            diff.push(format!(
                "  pod {pod:?} container {container:?}: expected <not pinned>, actual {actual} \
                 (add (\"{pod}\", \"{container}\", \"{actual}\") to EXPECTED)"
            ));
        }
    }
    assert!(
        diff.is_empty(),
        "{} hash(es) differ from the pinned values; a changed hash restarts every running pod \
         on upgrade:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

#[test]
fn enough_pods_are_pinned() {
    let pods: BTreeSet<&str> = EXPECTED.iter().map(|&(p, _, _)| p).collect();
    assert!(
        pods.len() >= 24,
        "only {} pods are pinned, want at least 24",
        pods.len()
    );
    for pod in &pods {
        assert!(
            EXPECTED.iter().any(|&(p, c, _)| p == *pod && c == SANDBOX),
            "pod {pod:?} has no pinned sandbox hash"
        );
    }
    let containers = EXPECTED.iter().filter(|&&(_, c, _)| c != SANDBOX).count();
    assert!(containers >= pods.len(), "every pinned pod has a container");
    for &(pod, container, hash) in EXPECTED {
        assert!(
            hash.len() == 16 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "pod {pod:?} container {container:?}: {hash:?} is not 16 lowercase hex digits"
        );
    }
}

/// Different specs hash differently, equal specs equally: the pins above
/// would mean little if the hash ignored most of the spec.
#[test]
fn distinct_specs_have_distinct_hashes() {
    // Container spec (as canonical JSON) -> hash, and the reverse.
    let mut by_spec: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_hash: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Sandbox inputs (sorted ports, hostNetwork) -> hash, and the reverse.
    let mut sandbox_by_spec: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sandbox_by_hash: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for mp in parse_all() {
        let spec = mp.pod.spec.as_ref().expect("spec");
        let init = spec.init_containers.iter().flatten();
        for c in init.chain(&spec.containers) {
            let json = serde_json::to_value(c).expect("json").to_string();
            let hash = container_hash(c);
            by_spec
                .entry(json.clone())
                .or_default()
                .insert(hash.clone());
            by_hash.entry(hash).or_default().insert(json);
        }
        let mut ports: Vec<String> = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| serde_json::to_value(p).expect("json").to_string())
            .collect();
        ports.sort();
        let key = format!(
            "{ports:?} hostNetwork={:?}",
            spec.host_network == Some(true)
        );
        let hash = sandbox_hash(&mp.pod, INFRA_IMAGE);
        sandbox_by_spec
            .entry(key.clone())
            .or_default()
            .insert(hash.clone());
        sandbox_by_hash.entry(hash).or_default().insert(key);
    }
    for (what, forward, backward) in [
        ("container", &by_spec, &by_hash),
        ("sandbox", &sandbox_by_spec, &sandbox_by_hash),
    ] {
        for (spec, hashes) in forward {
            assert_eq!(
                hashes.len(),
                1,
                "one {what} spec, several hashes {hashes:?}: {spec}"
            );
        }
        for (hash, specs) in backward {
            assert_eq!(
                specs.len(),
                1,
                "different {what} specs share the hash {hash}: {specs:#?}"
            );
        }
    }
    // The set is varied enough for the check to mean something.
    assert!(by_hash.len() >= 30, "{} container hashes", by_hash.len());
    assert!(
        sandbox_by_hash.len() >= 8,
        "{} sandbox hashes",
        sandbox_by_hash.len()
    );
    // The two equivalences the manifests are written to show.
    let all = compute();
    let hash_of = |pod: &str, container: &str| {
        all.iter()
            .find(|(p, c, _)| p == pod && c == container)
            .map(|(_, _, h)| h.clone())
            .unwrap_or_else(|| panic!("no {pod}/{container}"))
    };
    assert_eq!(
        hash_of("minimal", "app"),
        hash_of("explicit-defaults", "app"),
        "defaults written out change the container hash"
    );
    assert_eq!(
        hash_of("ports-tcp", SANDBOX),
        hash_of("ports-split", SANDBOX),
        "the sandbox hash depends on which container declares a port, or their order"
    );
    assert_ne!(hash_of("minimal", SANDBOX), hash_of("ports-tcp", SANDBOX));
    assert_ne!(
        hash_of("host-network-no-ports", SANDBOX),
        hash_of("minimal", SANDBOX)
    );
}
