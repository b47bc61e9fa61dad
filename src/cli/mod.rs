//! The commands beside `run` that look without acting: `podvisor validate`
//! (manifests, offline) and `podvisor plan` (what the next sync would do).

pub mod plan;
pub mod validate;
