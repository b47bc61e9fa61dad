//! Settings of `podvisor run`: the kubelet's flag names, layered with the `config` crate.
//!
//! Precedence, lowest first: built-in defaults < TOML file (`--config`) < environment
//! `PODVISOR_<KEY>` < command-line flags. Every key is known by one name in snake_case
//! (`registry_qps`); the flag is its kebab-case form (`--registry-qps`), the file accepts both
//! forms and the environment variable is `PODVISOR_REGISTRY_QPS`.
//!
//! Every layer hands over strings (or TOML scalars, turned into strings), and the table of
//! keys (`keys.rs`) holds one parser per key, so that a bad value gets the same error
//! whichever layer it came from, naming the flag, the value, the reason and the layer
//! ([`Origin`]).
//!
//! The files:
//! `args.rs` holds the flags as clap parses them ([`RunArgs`]), strings not yet checked;
//! `keys.rs` the table of keys, one row per setting, and how a value is applied;
//! `parse.rs` the parsers of values, one per kind ([`parse_duration`] among them);
//! `defaults.rs` the built-in defaults, the lowest layer;
//! `layers.rs` the file, environment and flag layers, merged by [`resolve`];
//! `types.rs` the resolved [`Settings`] and their typed values;
//! `error.rs` why the settings could not be resolved ([`SettingsError`]).

/// Exit code of `podvisor` when its settings are invalid.
pub const EXIT_CODE: i32 = 2;

mod args;
mod defaults;
mod error;
mod keys;
mod layers;
mod parse;
#[cfg(test)]
mod test_support;
mod types;

pub use args::RunArgs;
pub use error::{DurationError, FileError, SettingsError, ValueError};
pub use layers::{resolve, Origin};
pub use parse::parse_duration;
pub use types::{ExecHandler, LogFormat, ManifestValidation, Reserved, Settings};
