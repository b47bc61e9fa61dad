//! podvisor: keeps Kubernetes `v1/Pod` manifests running on one Docker engine.
//!
//! # Layout
//! (filled in as modules land)

pub mod manifest;
pub mod settings;
