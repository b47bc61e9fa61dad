//! podvisor: keeps Kubernetes `v1/Pod` manifests running on one Docker engine,
//! as the kubelet's Docker runtime did, rebuilt as a set of actix actors.
//!
//! # Layout
//!
//! Decisions are pure functions; effects live in actors; Docker is reached
//! through one trait.
//!
//! - [`settings`]: the kubelet's flags, `config/podvisor.toml` and
//!   `PODVISOR_*`, layered defaults < file < env < flags.
//! - [`manifest`]: reads the manifest directory into validated, defaulted
//!   `v1/Pod`s; errors name the file, document and field.
//! - [`naming`]: dockershim container names, `io.kubernetes.*` labels, the
//!   container and sandbox hashes, derived pod UIDs: how state is found again.
//! - [`plan`]: the pure planner (`SyncPod`): what to create, kill, start.
//! - [`probe`]: probe defaults and threshold counting.
//! - [`backoff`]: CrashLoopBackOff and image pull back-off delays (10 s
//!   doubling to 300 s); [`clock`]: the wall clock they read, replaceable in
//!   tests.
//! - [`credentials`]: registry credentials from a Docker `config.json`.
//! - [`containers`]: a pod spec turned into the engine's create requests:
//!   admission, per-container configuration.
//! - [`resources`]: quantities, CPU shares / CFS quota / memory limit, and
//!   the node's admission of a pod; [`env`](mod@env): a container's environment
//!   (`$(VAR)` expansion, the downward API); [`volumes`]: emptyDir and
//!   hostPath volumes, their binds, setup and teardown; [`security`]: users,
//!   groups, capabilities, privileged, `runAsNonRoot`.
//! - [`status`]: Kubernetes pod status from what the engine shows.
//! - [`handlers`]: hook and probe actions (`exec` native or nsenter,
//!   `httpGet`, `tcpSocket`).
//! - [`runtime`]: the [`runtime::ContainerRuntime`] seam, its bollard
//!   implementation and (feature `test-util`) `FakeDocker`.
//! - [`actors`]: the actors and their messages:
//!   - `Supervisor`: desired vs observed, one `PodWorker` per pod, orphans,
//!     engine events and the relist tick;
//!   - `PodWorker`: one sync at a time for its pod;
//!   - `ImagePuller`: the pull queue (serialized or parallel with a cap), a
//!     QPS limit that makes pulls wait, one pull per image, per-(pod, image)
//!     back-off;
//!   - `Readiness` and `ContainerRefs`: the registries;
//!   - `ManifestSource`: the directory scan.
//! - [`api`]: the HTTP API (`/healthz`, `/pods`).
//! - [`daemon`]: wires it all together for `podvisor run`.

pub mod actors;
pub mod api;
pub mod backoff;
pub mod clock;
pub mod containers;
pub mod credentials;
pub mod daemon;
pub mod env;
pub mod handlers;
pub mod manifest;
pub mod naming;
pub mod plan;
pub mod probe;
pub mod resources;
pub mod runtime;
pub mod security;
pub mod settings;
pub mod status;
pub mod volumes;
