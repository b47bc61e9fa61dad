//! Translation: a Pod spec turned into the engine's requests.
//!
//! - [`containers`]: admission and each container's create request.
//! - [`resources`]: quantities, CPU shares / CFS quota / memory limit, and
//!   the node's admission of a pod (its capacity is read by
//!   [`crate::host::node_capacity`]).
//! - [`env`](mod@env): a container's environment (`$(VAR)` expansion, the
//!   downward API).
//! - [`volumes`]: emptyDir and hostPath volumes, their binds, and what they
//!   need on the host (carried out by [`crate::host::volumes`]).
//! - [`security`]: users, groups, capabilities, privileged, `runAsNonRoot`.
//! - [`unsupported`]: fields a node without an API server refuses by name.
//! - [`dns`]: the pod's hostname, `/etc/hosts` and `resolv.conf`.

pub mod containers;
pub mod dns;
pub mod env;
pub mod resources;
pub mod security;
pub mod unsupported;
pub mod volumes;
