//! The credentials of the secure, Kubernetes-style API: what lets the
//! unmodified `kubectl` talk to podvisor over HTTPS on `--port`.
//!
//! # Layout
//!
//! - [`certs`](ensure_serving_cert): the serving certificate. Without
//!   `--tls-cert-file`, podvisor keeps its own CA and a serving certificate
//!   under `<root_dir>/pki/`, like k3s; with it, [`load_serving_cert`] reads the
//!   given pair. [`server_config`] turns either into a rustls `ServerConfig`.
//! - [`tokens`](Tokens): bearer tokens. Either the API server's
//!   `--token-auth-file` CSV, or one token podvisor makes once and keeps at
//!   `<root_dir>/token` ([`ensure_token`]) for the `podvisor-admin` user.
//! - [`kubeconfig`](write_kubeconfig): the file a user points `kubectl` at.
//!
//! Every function here does blocking file I/O: call it before the actix
//! System starts, or from `spawn_blocking`.
//!
//! Files are written atomically (a temporary file in the same directory, then
//! a rename), so a crash never leaves half a key or half a kubeconfig.

mod certs;
mod kubeconfig;
mod tokens;

pub use certs::{ensure_serving_cert, load_serving_cert, server_config, ServingCert};
pub use kubeconfig::write_kubeconfig;
pub use tokens::{ensure_token, AuthFailure, Tokens, User};

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the credentials could not be set up. Each message names the file (or
/// the flag it came from) and what failed, e.g.
/// `cannot read --tls-cert-file /x: No such file or directory`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {}", .path.display(), io_reason(.source))]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {what} {}: {}", .path.display(), io_reason(.source))]
    Write {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file was read but its content is not what it should be (no PEM
    /// certificate, a key that does not match, an empty token file …).
    #[error("{what} {}: {reason}", .path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// One line of a `--token-auth-file`.
    #[error("--token-auth-file {} line {line}: {reason}", .path.display())]
    TokenLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Making a key or a certificate failed.
    #[error("cannot generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    /// The certificate and key were refused by rustls.
    #[error("cannot set up TLS with the serving certificate: {0}")]
    Tls(String),
}

/// An I/O error as a person reads it: `No such file or directory`, without
/// the `(os error 2)` that `io::Error` appends.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// Reads a whole text file; a missing file is `Ok(None)`.
fn read_optional(path: &Path, what: &'static str) -> Result<Option<String>, AuthError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Read {
            what,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a whole text file that must exist.
fn read_required(path: &Path, what: &'static str) -> Result<String, AuthError> {
    fs::read_to_string(path).map_err(|source| AuthError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `dir` (and its parents) and gives it `mode`, also when it existed.
fn private_dir(dir: &Path, mode: u32, what: &'static str) -> Result<(), AuthError> {
    let err = |source| AuthError::Write {
        what,
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(err)
}

/// Writes `contents` to `path` atomically with `mode`: a temporary file beside
/// it, flushed to disk, then renamed over `path`.
fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    what: &'static str,
) -> Result<(), AuthError> {
    let err = |source| AuthError::Write {
        what,
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` only applies to a new file: a stale temporary file keeps its own.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reason_drops_the_os_error_number() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&e), "No such file or directory");
        let e = io::Error::other("plain");
        assert_eq!(io_reason(&e), "plain");
    }

    #[test]
    fn write_atomic_replaces_the_file_with_the_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", 0o600, "the file").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn write_atomic_names_the_file_when_the_directory_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/f");
        let e = write_atomic(&path, b"x", 0o600, "the API token").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot write the API token {}: No such file or directory",
                path.display()
            )
        );
    }
}
