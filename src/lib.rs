//! podvisor: keeps Kubernetes `v1/Pod` manifests running on one Docker engine,
//! as the kubelet's Docker runtime did, rebuilt as a set of actix actors.
//!
//! # Layout
//!
//! Three floors over one vocabulary: **decide** (what a sync does, no I/O),
//! **translate** (a Pod into the engine's requests, no I/O) and **effect**
//! (actors, and the two seams to the outside: the engine and the node).
//! A floor uses only what is below it in this picture:
//!
//! ```text
//!  main.rs    parse flags, set up tracing, run the daemon
//!  daemon     wires the actors for `podvisor run`;  api/  the HTTP API
//!  actors/    effects: Supervisor, PodWorker (mod, sync, execute),
//!             ImagePuller, ImageGc, Prober, Readiness, ContainerRefs, the
//!             event Recorder, the manifest sources; shared = owned maps + views
//!  host/      the node seam: pod dirs, tmpfs, /proc (Host, RealHost, FakeHost); ptys
//!  runtime/   the engine seam: trait, bollard, bounded calls, FakeDocker
//!  decide/    plan, gc, image gc, status, back-off, probe thresholds
//!  spec/      Pod → create requests: env, resources, security, volumes, dns
//!  manifest/  scan, parse, default and validate manifests
//!  model/     names, labels, hashes; policies, reasons, phases as types;
//!             PodExt; the clock
//!  settings/  flags, file, environment: one default per key
//! ```
//!
//! - [`settings`]: the kubelet's flags, `config/podvisor.toml` and
//!   `PODVISOR_*`, layered defaults < file < env < flags.
//! - [`manifest`]: reads the manifest directory into validated, defaulted
//!   `v1/Pod`s; errors name the file, document and field.
//! - [`model`]: the shared vocabulary: dockershim names, `io.kubernetes.*`
//!   labels and hashes ([`model::naming`]); restart and pull policies,
//!   waiting/terminated/refusal reasons and the pod phase as enums, parsed
//!   once and spelled out only in status and events; the [`model::PodExt`]
//!   accessors; the clock.
//! - [`decide`]: pure decisions: the planner (`SyncPod`), dead-container
//!   and image GC, pod status from what the engine shows, CrashLoopBackOff and pull
//!   back-off, probe thresholds.
//! - [`spec`]: pure translation of a pod into the engine's create requests:
//!   admission, environment, resources, security, volume plans (with
//!   `downwardAPI` files), the pod's `/etc/hosts` and `resolv.conf`.
//! - [`host`]: the [`host::Host`] seam to the node (directories, tmpfs
//!   mounts, `/proc`), `RealHost`, (feature `test-util`) `FakeHost`; carries
//!   out the volume plans of [`spec::volumes`], writes the pod's files
//!   ([`host::files`]: downwardAPI volumes atomically, hosts, resolv.conf)
//!   and reads the node's capacity.
//! - [`runtime`]: the [`runtime::ContainerRuntime`] seam, its bollard
//!   implementation, the bounded (timed) wrapper, registry credentials and
//!   (feature `test-util`) `FakeDocker`.
//! - [`actors`]: the actors and their messages:
//!   - `Supervisor`: desired vs observed, one `PodWorker` per pod, orphans,
//!     its own engine-event task and the relist tick;
//!   - `PodWorker`: one sync at a time for its pod, each in a tracing span
//!     naming the pod and what triggered it; execution returns a typed
//!     result per container that the status is built from;
//!   - `ImagePuller`: the pull queue (serialized or parallel with a cap), a
//!     QPS limit that makes pulls wait, one pull per image, per-(pod, image)
//!     back-off;
//!   - `Readiness` and `ContainerRefs`: the registries (Readiness forwards
//!     the prober's news after storing it); the event `Recorder` (pods'
//!     events and the node's);
//!   - `ImageGc`: unused images removed when the image disk is full, LRU
//!     first, its records of use under `--root-dir`;
//!   - `Prober` and the hook/probe `handlers` (exec native or nsenter,
//!     `httpGet`, `tcpSocket`);
//!   - `ManifestSource` and the URL source.
//!
//!   Shared state has its owner in the types: the one actor that writes a
//!   map holds its [`actors::shared::Owned`]; readers (the API, status
//!   builders) hold [`actors::shared::View`]s.
//! - [`api`]: the HTTP APIs: the read-only one (`/healthz`, `/pods`) and the
//!   node's Kubernetes API for `kubectl` (pods, events; `exec` and `attach`
//!   over WebSocket through the native or nsenter exec handler).
//! - [`metrics`]: the Prometheus registry behind `/metrics`, shared by the
//!   daemon into the actors, the bounded runtime and the API.
//! - [`daemon`]: wires it all together for `podvisor run`.
//! - `testing` (feature `test-util`): the shared test fixtures,
//!   `pod("web").container("app").build()`.

pub mod actors;
pub mod api;
pub mod cli;
pub mod daemon;
pub mod decide;
pub mod host;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod network;
pub mod runtime;
pub mod settings;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
