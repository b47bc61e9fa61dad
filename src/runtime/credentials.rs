//! Node-wide registry credentials from a Docker `config.json`.
//!
//! `auths.<registry>.auth` (base64 `user:password`) or `username` and
//! `password`; the registry key may be a bare host (`127.0.0.1:5000`) or a
//! URL (`https://index.docker.io/v1/`).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use crate::runtime::Credentials;

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Credentials by registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialStore {
    by_host: HashMap<String, (String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {reason}")]
    Bad { path: String, reason: String },
}

/// The registry host of a key such as `https://index.docker.io/v1/`.
fn host_of_key(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    key.split('/').next().unwrap_or(key).to_string()
}

/// The registry an image is pulled from (`docker.io` for Docker Hub names).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

fn normalise(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

impl CredentialStore {
    /// Parses the text of a `config.json`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CredentialError> {
        let bad = |reason: String| CredentialError::Bad {
            path: origin.to_string(),
            reason,
        };
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut by_host = HashMap::new();
        for (key, entry) in file.auths {
            let pair = match (&entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| bad(format!("auths.{key}.auth: not base64: {e}")))?;
                    let text = String::from_utf8(raw)
                        .map_err(|_| bad(format!("auths.{key}.auth: not UTF-8")))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| bad(format!("auths.{key}.auth: not user:password")))?;
                    (u.to_string(), p.to_string())
                }
                (_, Some(u), Some(p)) => (u, p),
                _ => continue, // e.g. an entry served by a credential helper
            };
            by_host.insert(normalise(&host_of_key(&key)).to_string(), pair);
        }
        Ok(Self { by_host })
    }

    /// Reads and parses a `config.json`.
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let text = std::fs::read_to_string(path).map_err(|e| CredentialError::Bad {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The credentials for the registry `image` comes from.
    pub fn for_image(&self, image: &str) -> Option<Credentials> {
        let host = normalise(registry_of(image));
        self.by_host.get(host).map(|(u, p)| Credentials {
            username: u.clone(),
            password: p.clone(),
            server: host.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_of_an_image() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/a"), "localhost");
        assert_eq!(registry_of("registry.k8s.io/pause:3.10"), "registry.k8s.io");
    }

    #[test]
    fn auth_and_username_password_entries() {
        // "alice:s3cr:et" in base64; the password keeps its colon.
        let text = r#"{"auths": {
            "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjpldA=="},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
            "helper.example": {}
        }}"#;
        let s = CredentialStore::parse(text, "config.json").unwrap();
        let c = s.for_image("127.0.0.1:5000/podvisor/busybox:1").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cr:et")
        );
        assert_eq!(c.server, "127.0.0.1:5000");
        let hub = s.for_image("busybox:1").unwrap();
        assert_eq!(hub.username, "bob");
        assert_eq!(s.for_image("quay.io/x/y"), None);
        assert_eq!(s.for_image("helper.example/x"), None);
    }

    #[test]
    fn bad_files_name_the_file_and_the_key() {
        let e = CredentialStore::parse("{", "/etc/x.json")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/x.json: "), "{e}");
        let e = CredentialStore::parse(r#"{"auths":{"r":{"auth":"%%%"}}}"#, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auths.r.auth: not base64"), "{e}");
    }
}
