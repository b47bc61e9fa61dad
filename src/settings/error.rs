//! Why the settings could not be resolved.

use std::path::PathBuf;

use super::Origin;

/// Why the settings could not be resolved. Print it and exit with [`EXIT_CODE`](super::EXIT_CODE).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for --{flag}: {reason} (from {origin})")]
    Invalid {
        /// The flag, kebab-case, without `--`.
        flag: String,
        /// The value as given (for lists: the bad item).
        value: String,
        /// What is wrong with it.
        reason: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A setting that has no default and was given nowhere.
    #[error("--{flag} is required (give the flag, PODVISOR_{env} or {key} in the --config file)", env = .flag.replace('-', "_").to_uppercase(), key = .flag.replace('-', "_"))]
    Missing {
        /// The flag, kebab-case, without `--`.
        flag: String,
    },
    /// `--max-parallel-image-pulls` above 1 while image pulls are serialized.
    #[error("--max-parallel-image-pulls={n} requires --serialize-image-pulls=false (max-parallel-image-pulls from {origin}, serialize-image-pulls from {serialize_origin})")]
    ParallelPullsSerialized {
        /// The value of `--max-parallel-image-pulls`.
        n: u32,
        /// Where it came from.
        origin: Origin,
        /// Where `serialize-image-pulls=true` came from.
        serialize_origin: Origin,
    },
    /// A key in the config file that is no setting.
    #[error("unknown key {key:?} in config file {}", .path.display())]
    UnknownKey {
        /// The key as written in the file.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// The config file cannot be read or is not valid TOML.
    #[error("config file {}: {reason}", .path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
