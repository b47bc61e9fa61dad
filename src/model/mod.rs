//! The vocabulary shared by every floor.
//!
//! - [`naming`]: dockershim container names, `io.kubernetes.*` labels, the
//!   container and sandbox hashes, derived pod UIDs: how state is found again.
//! - [`pod`]: [`PodExt`], the accessors every floor asks of a Pod.
//! - [`policy`]: restart and pull policies as types.
//! - [`reason`]: the reasons users see in container states, as types.
//! - [`phase`]: the pod phase, as a type.
//! - [`clock`]: the wall clock the back-offs and probes read, replaceable in
//!   tests.
//!
//! The API spells these values as strings; they are parsed once (the
//! manifest validator refuses unknown ones) and written back only into
//! status and events.

/// A value the API does not allow for one of the `api_enum!` types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported value {value:?}: supported values: {supported}")]
pub struct UnknownValue {
    pub value: String,
    pub supported: &'static str,
}

/// An enum of values the Kubernetes API spells as strings: `as_str` gives
/// the spelling (the variant's name), `FromStr` parses it, `ALL` lists them.
macro_rules! api_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the API's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The API's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),+
                }
            }

            /// The API's spellings, as the validator's messages list them.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|p| p.as_str()).collect()
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|p| p.as_str() == s).ok_or_else(|| {
                    $crate::model::UnknownValue {
                        value: s.to_string(),
                        supported: concat!($("\"", stringify!($variant), "\" "),+),
                    }
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod clock;
pub mod naming;
pub mod phase;
pub mod pod;
pub mod policy;
pub mod reason;

pub use phase::PodPhase;
pub use pod::{is_sidecar, PodExt};
pub use policy::{PullPolicy, RestartPolicy};
pub use reason::{RefusalReason, TerminatedReason, WaitingReason};
