//! The pure parts of the node's Kubernetes API: what `kubectl` (1.32) needs
//! answered, shaped without HTTP or actors so every rule is unit-tested.
//!
//! - [`status`]: `meta.k8s.io` `Status` bodies for errors (400, 401, 403,
//!   404, 405, 409, 415, 422) and for a delete's `Success`.
//! - [`channel`]: the `exec`/`attach` WebSocket protocol (v4 and v5 channels,
//!   terminal sizes, the `Status` that ends a session).
//! - [`selectors`]: `labelSelector` and `fieldSelector` as the API server
//!   parses them, with the pod and event field labels it supports.
//! - [`container`]: which container a `logs`, `exec` or `attach` means.
//! - [`logs`]: a pod log request's query (`PodLogOptions`) and which
//!   container instance it means.
//! - [`object`]: a pod sent to the API made into what a manifest file
//!   holds (names checked, the server's fields dropped).
//! - [`patch`]: the three `PATCH` body types (strategic merge, JSON merge,
//!   JSON patch) applied to a Pod as the API server applies them.
//! - [`table`]: the server-side `meta.k8s.io/v1` `Table` that `kubectl get`
//!   asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with
//!   the API server's pod and event columns and `HumanDuration` ages.
//!
//! The HTTP routes that serve these live elsewhere; they only pick the pods
//! or events, the clock and the resource version, and hand them in here.

pub mod channel;
pub mod container;
pub mod logs;
pub mod object;
pub mod patch;
pub mod selectors;
pub mod status;
pub mod table;

pub use patch::{PatchError, PatchKind};
pub use selectors::{event_field, pod_field, FieldSelector, LabelSelector};
pub use status::{
    already_exists, bad_request, conflict, forbidden, invalid, method_not_allowed, not_found,
    status, success, unauthorized, unsupported_media_type,
};
pub use table::{event_table, human_duration, pod_table, IncludeObject};
