//! Why the settings could not be resolved: [`SettingsError`], and why one value or the
//! config file was refused.

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
        reason: ValueError,
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
    /// `--image-gc-low-threshold` not below `--image-gc-high-threshold`.
    #[error("--image-gc-low-threshold={low} must be below --image-gc-high-threshold={high} (low from {low_origin}, high from {high_origin})")]
    ImageGcThresholds {
        low: u8,
        high: u8,
        low_origin: Origin,
        high_origin: Origin,
    },
    /// One of a pair of settings that go together, without the other.
    #[error("{given} requires {missing}")]
    NeedsBoth {
        given: &'static str,
        missing: &'static str,
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
        reason: FileError,
    },
}

/// Why the `--config` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be read.
    #[error(transparent)]
    Read(std::io::Error),
    /// The `config` crate refused it (not valid TOML) or could not merge it.
    #[error(transparent)]
    Config(Box<config::ConfigError>),
    /// One key written twice, in snake_case and in kebab-case.
    #[error("{first:?} and {second:?} are the same key")]
    SameKey {
        /// The key as written first (in name order).
        first: String,
        /// The key as written the second time.
        second: String,
    },
}

/// Why a value was refused; shown after the flag and the value in [`SettingsError::Invalid`].
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// A list or a table where one value is expected.
    #[error("expected a single value")]
    NotSingle,
    /// A scalar of the config file that does not read as text.
    #[error(transparent)]
    NotText(Box<config::ConfigError>),
    /// Empty or blank.
    #[error("must not be empty")]
    Empty,
    /// The manifest directory does not exist.
    #[error("no such directory")]
    NoSuchDirectory,
    /// The manifest directory is something else.
    #[error("not a directory")]
    NotADirectory,
    /// The manifest directory cannot be looked at.
    #[error(transparent)]
    Unreadable(std::io::Error),
    /// A file that should exist does not.
    #[error("no such file")]
    NoSuchFile,
    /// A relative path.
    #[error("must be an absolute path")]
    NotAbsolute,
    /// No IP address.
    #[error("must be an IPv4 or IPv6 address")]
    NotAnIp,
    /// No Docker endpoint.
    #[error("must be unix://PATH, tcp://HOST:PORT or http://HOST:PORT")]
    NotAnEndpoint,
    /// No http(s) URL.
    #[error("must be an http:// or https:// URL")]
    NotAnHttpUrl,
    /// Not a finite number, or below 0.
    #[error("must be a number >= 0")]
    NotANonNegativeNumber,
    /// Not an integer, or below 1.
    #[error("must be an integer >= 1")]
    NotAtLeastOne,
    /// Not a whole percent.
    #[error("must be a whole percent from 0 to 100")]
    NotAPercent,
    /// Not an integer.
    #[error("must be an integer")]
    NotAnInteger,
    /// Not a size in bytes (`4194304`, `512Ki`, `4Mi`, `1G`), or 0.
    #[error("must be a size in bytes >= 1, with an optional suffix k, M, G, Ki, Mi or Gi")]
    NotAByteSize,
    /// Not a port number, or 0.
    #[error("must be a port number from 1 to 65535")]
    NotAPort,
    /// Not a port number nor 0.
    #[error("must be a port number from 1 to 65535, or 0 for off")]
    NotAPortOrZero,
    /// Not a boolean as Go reads them.
    #[error("must be true or false")]
    NotABoolean,
    /// No exec handler.
    #[error("must be native or nsenter")]
    NotAnExecHandler,
    /// No manifest validation mode.
    #[error("must be strict or warn")]
    NotAManifestValidation,
    /// No log format.
    #[error("must be plain or json")]
    NotALogFormat,
    /// A header without `:`.
    #[error("must be Name:Value")]
    NotAHeader,
    /// A header whose name is empty or no HTTP token.
    #[error("must be Name:Value with a valid header name")]
    BadHeaderName,
    /// A header value with control characters.
    #[error("header value must not hold control characters")]
    BadHeaderValue,
    /// A node name that is no DNS-1123 subdomain.
    #[error(
        "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', \
                    starting and ending with a letter or digit, at most 253 characters"
    )]
    NotASubdomain,
    /// No `key=value` node label.
    #[error("must be a list of key=value labels (e.g. disk=ssd,example.com/zone=a): {0}")]
    NotALabel(String),
    /// No `cpu=…,memory=…` list.
    #[error("must be a list of cpu=QUANTITY and memory=QUANTITY (e.g. cpu=500m,memory=1Gi): {0}")]
    NotAReservation(String),
    /// A duration of 0 where it must be positive.
    #[error("must be greater than 0")]
    NotPositive,
    /// No duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
}

/// Why [`parse_duration`](super::parse_duration) refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A leading `-`.
    #[error("must not be negative")]
    Negative,
    /// Anything else that is no duration.
    #[error("must be a duration such as 500ms, 10s, 1m30s or 2h")]
    Malformed,
    /// More than `u64::MAX` nanoseconds.
    #[error("duration too large")]
    TooLarge,
}
