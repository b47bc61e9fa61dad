//! podvisor: keeps Kubernetes `v1/Pod` manifests running on one Docker engine,
//! as the kubelet's Docker runtime did, rebuilt as a set of actix actors.
//!
//! # Layout
//!
//! Four floors, each using only the ones below it: the vocabulary, pure
//! decisions and translations, effects in actors (and on the node in host),
//! and one seam to Docker.
//!
//! ```text
//!  daemon ─ wires the actors for `podvisor run`; api ─ the HTTP API
//!  actors/   effects: Supervisor, PodWorker, ImagePuller, Prober,
//!            Readiness, ContainerRefs, events, manifest sources
//!  host/     effects on the node: pod dirs, tmpfs, /proc (Host, FakeHost)
//!  decide/   what to do, no I/O: plan, status, back-off, probe counting
//!  spec/     what to ask the engine, no I/O: Pod → create requests
//!  manifest/ read, default and validate manifests
//!  model/    names, labels, hashes, policies, PodExt, the clock
//!  runtime/  the engine seam: trait, bollard, bounded calls, FakeDocker
//!  settings/ flags, file, environment
//! ```
//!
//! - [`settings`]: the kubelet's flags, `config/podvisor.toml` and
//!   `PODVISOR_*`, layered defaults < file < env < flags.
//! - [`manifest`]: reads the manifest directory into validated, defaulted
//!   `v1/Pod`s; errors name the file, document and field.
//! - [`model`]: the shared vocabulary: dockershim names, `io.kubernetes.*`
//!   labels and hashes ([`model::naming`]), typed restart and pull policies,
//!   the [`model::PodExt`] accessors, the clock.
//! - [`decide`]: pure decisions: the planner (`SyncPod`), pod status from
//!   what the engine shows, CrashLoopBackOff and pull back-off, probe
//!   thresholds.
//! - [`spec`]: pure translation of a pod into the engine's create requests:
//!   admission, environment, resources, security, volumes.
//! - [`host`]: the [`host::Host`] seam to the node (directories, tmpfs
//!   mounts, `/proc`), `RealHost`, (feature `test-util`) `FakeHost`; carries
//!   out the volume plans of [`spec::volumes`] and reads the node's capacity.
//! - [`runtime`]: the [`runtime::ContainerRuntime`] seam, its bollard
//!   implementation, the bounded (timed) wrapper, registry credentials and
//!   (feature `test-util`) `FakeDocker`.
//! - [`actors`]: the actors and their messages:
//!   - `Supervisor`: desired vs observed, one `PodWorker` per pod, orphans,
//!     engine events and the relist tick;
//!   - `PodWorker`: one sync at a time for its pod;
//!   - `ImagePuller`: the pull queue (serialized or parallel with a cap), a
//!     QPS limit that makes pulls wait, one pull per image, per-(pod, image)
//!     back-off;
//!   - `Readiness` and `ContainerRefs`: the registries; the event recorder;
//!   - `Prober` and the hook/probe `handlers` (exec native or nsenter,
//!     `httpGet`, `tcpSocket`);
//!   - `ManifestSource` and the URL source.
//! - [`api`]: the HTTP API (`/healthz`, `/pods`).
//! - [`daemon`]: wires it all together for `podvisor run`.
//! - `testing` (feature `test-util`): the shared test fixtures.

pub mod actors;
pub mod api;
pub mod daemon;
pub mod decide;
pub mod host;
pub mod manifest;
pub mod model;
pub mod runtime;
pub mod settings;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
