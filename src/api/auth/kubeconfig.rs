//! The kubeconfig that points the unmodified `kubectl` at podvisor.

use std::path::Path;

use base64::Engine;
use serde::Serialize;

use super::{write_atomic, AuthError};

const WHAT: &str = "the kubeconfig";

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: [Named<'a, Cluster<'a>>; 1],
    users: [Named<'a, AuthInfo<'a>>; 1],
    contexts: [Named<'a, Context<'a>>; 1],
    current_context: &'a str,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    item: T,
}

#[derive(Serialize)]
struct Cluster<'a> {
    cluster: ClusterBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterBody<'a> {
    server: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_authority_data: Option<String>,
}

#[derive(Serialize)]
struct AuthInfo<'a> {
    user: AuthInfoBody<'a>,
}

#[derive(Serialize)]
struct AuthInfoBody<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    context: ContextBody<'a>,
}

#[derive(Serialize)]
struct ContextBody<'a> {
    cluster: &'a str,
    user: &'a str,
}

/// Writes a `v1` `Config` for `kubectl` at `path`: one cluster at `server`
/// trusting `ca_pem` (as `certificate-authority-data`, left out when
/// `ca_pem` is empty so that kubectl falls back to the system's roots), one
/// user with the bearer `token`, and one context tying them, which is also
/// the `current-context`. The cluster, user and context are all called
/// `name` (the node name), so several podvisor nodes merge into one
/// kubeconfig without clashing.
///
/// Parent directories are created; the file is replaced atomically with mode
/// 0600, since it holds the token. Blocking.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    token: &str,
    name: &str,
) -> Result<(), AuthError> {
    let config = Config {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name,
            item: Cluster {
                cluster: ClusterBody {
                    server,
                    certificate_authority_data: (!ca_pem.is_empty())
                        .then(|| base64::engine::general_purpose::STANDARD.encode(ca_pem)),
                },
            },
        }],
        users: [Named {
            name,
            item: AuthInfo {
                user: AuthInfoBody { token },
            },
        }],
        contexts: [Named {
            name,
            item: Context {
                context: ContextBody {
                    cluster: name,
                    user: name,
                },
            },
        }],
        current_context: name,
    };
    let yaml = serde_yaml_ng::to_string(&config).map_err(|e| AuthError::Invalid {
        what: WHAT,
        path: path.to_path_buf(),
        reason: format!("cannot encode it: {e}"),
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| AuthError::Write {
            what: WHAT,
            path: path.to_path_buf(),
            source,
        })?;
    }
    write_atomic(path, yaml.as_bytes(), 0o600, WHAT)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use serde_yaml_ng::Value;

    use super::*;

    fn read(path: &Path) -> Value {
        serde_yaml_ng::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_kubeconfig_has_one_cluster_user_and_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/kubeconfig");
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        write_kubeconfig(&path, "https://127.0.0.1:10250", ca, "tok3n", "node-1").unwrap();
        let v = read(&path);
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Config");
        assert_eq!(v["current-context"], "node-1");

        let clusters = v["clusters"].as_sequence().unwrap();
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0]["name"], "node-1");
        assert_eq!(clusters[0]["cluster"]["server"], "https://127.0.0.1:10250");
        let data = clusters[0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(decoded, ca.as_bytes());

        let users = v["users"].as_sequence().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0]["name"], "node-1");
        assert_eq!(users[0]["user"]["token"], "tok3n");

        let contexts = v["contexts"].as_sequence().unwrap();
        assert_eq!(contexts.len(), 1);
        assert_eq!(contexts[0]["name"], "node-1");
        assert_eq!(contexts[0]["context"]["cluster"], "node-1");
        assert_eq!(contexts[0]["context"]["user"], "node-1");

        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn without_a_ca_the_cluster_has_no_certificate_authority_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write_kubeconfig(&path, "https://node:10250", "", "t", "node").unwrap();
        let v = read(&path);
        assert!(v["clusters"][0]["cluster"]
            .get("certificate-authority-data")
            .is_none());
    }

    #[test]
    fn writing_again_replaces_the_file_and_tightens_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_kubeconfig(&path, "https://node:10250", "", "new-token", "node").unwrap();
        assert_eq!(read(&path)["users"][0]["user"]["token"], "new-token");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
