//! The vocabulary shared by every floor.
//!
//! - [`naming`]: dockershim container names, `io.kubernetes.*` labels, the
//!   container and sandbox hashes, derived pod UIDs: how state is found again.
//! - [`pod`]: [`PodExt`], the accessors every floor asks of a Pod.
//! - [`policy`]: restart and pull policies as types.
//! - [`clock`]: the wall clock the back-offs and probes read, replaceable in
//!   tests.

pub mod clock;
pub mod naming;
pub mod pod;
pub mod policy;

pub use pod::PodExt;
pub use policy::{PullPolicy, RestartPolicy};
