//! [`Network`]: a plugin with what its setups returned, kept under
//! `--root-dir/network/<infra-id>.json`, so that a teardown (CNI's DEL
//! wants the ADD's result) and a check work after a restart, and a
//! network whose infra container is gone is torn down once it is found.
//!
//! A record is written *before* the plugin's setup runs (without a
//! result: pending) and completed after it: a crash in between leaves a
//! pending record, whose network is torn down before the next setup, so
//! an address the plugin gave is never leaked.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{NetworkError, NetworkPlugin, PodNetwork, Wired};
use crate::runtime::PortMapping;

/// What is kept of one infra container's network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Kept {
    namespace: String,
    name: String,
    uid: String,
    /// The hostPorts given to the setup (CNI's DEL and CHECK get them again).
    #[serde(default)]
    ports: Vec<KeptPort>,
    /// The setup's record; `None` while the setup has not finished.
    record: Option<serde_json::Value>,
    #[serde(default)]
    ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeptPort {
    container_port: u16,
    protocol: String,
    host_port: Option<u16>,
    host_ip: Option<String>,
}

impl From<&PortMapping> for KeptPort {
    fn from(p: &PortMapping) -> Self {
        Self {
            container_port: p.container_port,
            protocol: p.protocol.clone(),
            host_port: p.host_port,
            host_ip: p.host_ip.clone(),
        }
    }
}

impl From<&KeptPort> for PortMapping {
    fn from(p: &KeptPort) -> Self {
        Self {
            container_port: p.container_port,
            protocol: p.protocol.clone(),
            host_port: p.host_port,
            host_ip: p.host_ip.clone(),
        }
    }
}

/// A network plugin and its kept records (one copy in memory, the files
/// as the durable one). Cheap to share (`Arc`).
pub struct Network {
    plugin: Arc<dyn NetworkPlugin>,
    dir: PathBuf,
    kept: Mutex<HashMap<String, Kept>>,
}

impl Network {
    /// The plugin, with the records kept in `<root_dir>/network` (read
    /// now; a record that does not parse is logged and left alone).
    pub fn new(plugin: Arc<dyn NetworkPlugin>, root_dir: &Path) -> Self {
        let dir = root_dir.join("network");
        let mut kept = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let path = e.path();
                let Some(id) = infra_id_of(&path) else {
                    continue;
                };
                match std::fs::read(&path).map(|b| serde_json::from_slice::<Kept>(&b)) {
                    Ok(Ok(k)) => {
                        kept.insert(id, k);
                    }
                    Ok(Err(e)) => {
                        tracing::error!(file = %path.display(), error = %e, "a kept pod network record does not parse; left alone")
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "cannot read a kept pod network record")
                    }
                }
            }
        }
        Self {
            plugin,
            dir,
            kept: Mutex::new(kept),
        }
    }

    pub fn plugin(&self) -> &dyn NetworkPlugin {
        &*self.plugin
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, infra_id: &str) -> PathBuf {
        self.dir.join(format!("{infra_id}.json"))
    }

    /// The pod IPs of a wired infra container (`None`: not wired; empty:
    /// wired, the plugin left the IP to Docker).
    pub fn ips(&self, infra_id: &str) -> Option<Vec<IpAddr>> {
        let kept = self.kept();
        let k = kept.get(infra_id)?;
        k.record.is_some().then(|| k.ips.clone())
    }

    async fn save(&self, infra_id: &str, k: Kept) -> Result<(), NetworkError> {
        let path = self.path(infra_id);
        let bytes = serde_json::to_vec_pretty(&k).unwrap_or_default();
        let written = tokio::task::spawn_blocking(move || {
            crate::actors::source::write_atomically(&path, &bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.kept().insert(infra_id.to_string(), k);
                Ok(())
            }
            Ok(Err(e)) => Err(self.config_error(format!(
                "cannot keep the network record {}: {e}",
                self.path(infra_id).display()
            ))),
            Err(e) => Err(self.config_error(format!("keeping the network record: {e}"))),
        }
    }

    fn config_error(&self, message: String) -> NetworkError {
        NetworkError::Config {
            plugin: self.plugin.name().to_string(),
            message,
        }
    }

    async fn forget(&self, infra_id: &str) {
        self.kept().remove(infra_id);
        match tokio::fs::remove_file(self.path(infra_id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.path(infra_id).display(), error = %e, "cannot remove a network record")
            }
        }
    }

    /// Wires `pod` (its infra container running, `netns` set): a pending
    /// record, the plugin's setup, the full record. A pending record left
    /// by a crash is torn down first; a wired one is returned as it is.
    /// On failure what the setup may have done is torn down and nothing
    /// is kept.
    pub async fn setup(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
        let before = self.kept().get(&pod.infra_id).cloned();
        if let Some(k) = &before {
            if let Some(record) = &k.record {
                return Ok(Wired {
                    ips: k.ips.clone(),
                    record: record.clone(),
                });
            }
            // Pending: a setup that never finished; undo what it did.
            let _ = self.plugin.teardown(pod).await;
        }
        let pending = Kept {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            ports: pod.ports.iter().map(KeptPort::from).collect(),
            record: None,
            ips: Vec::new(),
        };
        self.save(&pod.infra_id, pending.clone()).await?;
        match self.plugin.setup(pod).await {
            Ok(wired) => {
                let full = Kept {
                    record: Some(wired.record.clone()),
                    ips: wired.ips.clone(),
                    ..pending
                };
                self.save(&pod.infra_id, full).await?;
                Ok(wired)
            }
            Err(e) => {
                if let Err(undo) = self.plugin.teardown(pod).await {
                    tracing::warn!(infra = %pod.infra_id, error = %undo, "undoing a failed network setup failed; retried later");
                    return Err(e);
                }
                self.forget(&pod.infra_id).await;
                Err(e)
            }
        }
    }

    /// The pod network of a kept record, for `check` and `teardown`.
    fn pod_of(&self, infra_id: &str, netns: Option<PathBuf>) -> Option<PodNetwork> {
        let kept = self.kept();
        let k = kept.get(infra_id)?;
        Some(PodNetwork {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
            uid: k.uid.clone(),
            infra_id: infra_id.to_string(),
            netns,
            ports: k.ports.iter().map(PortMapping::from).collect(),
            record: k.record.clone(),
        })
    }

    /// Tears down the network of `infra_id` (`netns`: its namespace while
    /// it runs, `None` once it is gone). Nothing to do when it was never
    /// wired; on failure the record stays and the teardown is tried again
    /// ([`Network::tear_down_dead`]).
    pub async fn teardown(
        &self,
        infra_id: &str,
        netns: Option<PathBuf>,
    ) -> Result<(), NetworkError> {
        let Some(pod) = self.pod_of(infra_id, netns) else {
            return Ok(());
        };
        self.plugin.teardown(&pod).await?;
        tracing::info!(infra = %&infra_id[..infra_id.len().min(12)], pod = %format!("{}/{}", pod.namespace, pod.name), plugin = %self.plugin.name(), "pod network torn down");
        self.forget(infra_id).await;
        Ok(())
    }

    /// Checks a wired infra container's network (CNI's CHECK).
    pub async fn check(&self, infra_id: &str, netns: PathBuf) -> Result<(), NetworkError> {
        match self.pod_of(infra_id, Some(netns)) {
            Some(pod) if pod.record.is_some() => self.plugin.check(&pod).await,
            _ => Ok(()),
        }
    }

    /// Tears down the networks whose infra container no longer runs
    /// (`running`: the infra containers running in a list that began at
    /// `listed_at`; a record newer than that list is left for the next).
    /// Returns how many were torn down.
    pub async fn tear_down_dead(&self, running: &HashSet<String>, listed_at: SystemTime) -> usize {
        let candidates: Vec<String> = self
            .kept()
            .keys()
            .filter(|id| !running.contains(*id))
            .cloned()
            .collect();
        let mut done = 0;
        for id in candidates {
            let modified = tokio::fs::metadata(self.path(&id))
                .await
                .and_then(|m| m.modified());
            if modified.is_ok_and(|m| m >= listed_at) {
                continue; // kept after the list was made: may be a new pod
            }
            match self.teardown(&id, None).await {
                Ok(()) => done += 1,
                Err(e) => {
                    tracing::warn!(infra = %&id[..id.len().min(12)], error = %e, "tearing down the network of a gone infra container failed; tried again at the next relist")
                }
            }
        }
        done
    }
}

/// `<infra-id>.json` → the infra ID.
fn infra_id_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let id = name.strip_suffix(".json")?;
    (!id.is_empty() && !id.starts_with('.')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// A plugin that counts its calls and fails its setup when told.
    #[derive(Default)]
    struct Counting {
        setups: AtomicUsize,
        teardowns: AtomicUsize,
        fail_setup: bool,
    }

    #[async_trait]
    impl NetworkPlugin for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn infra_network_mode(&self) -> Option<&'static str> {
            Some("none")
        }
        fn serves_host_ports(&self) -> bool {
            true
        }
        async fn init(&self) -> Result<(), NetworkError> {
            Ok(())
        }
        async fn setup(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
            self.setups.fetch_add(1, Ordering::SeqCst);
            if self.fail_setup {
                return Err(NetworkError::Failed {
                    plugin: "counting".into(),
                    call: "setup",
                    message: "no".into(),
                });
            }
            Ok(Wired {
                ips: vec!["10.9.0.2".parse().unwrap()],
                record: serde_json::json!({"for": pod.infra_id}),
            })
        }
        async fn status(&self, _: &PodNetwork) -> Result<Wired, NetworkError> {
            Ok(Wired::default())
        }
        async fn check(&self, _: &PodNetwork) -> Result<(), NetworkError> {
            Ok(())
        }
        async fn teardown(&self, _: &PodNetwork) -> Result<(), NetworkError> {
            self.teardowns.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn pod(infra: &str) -> PodNetwork {
        PodNetwork {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            infra_id: infra.into(),
            netns: Some("/proc/1/ns/net".into()),
            ports: vec![],
            record: None,
        }
    }

    #[tokio::test]
    async fn a_setup_is_kept_across_a_restart_and_torn_down_once() {
        let root = tempfile::tempdir().unwrap();
        let plugin = Arc::new(Counting::default());
        let net = Network::new(plugin.clone(), root.path());
        assert_eq!(net.ips("abc"), None);
        net.setup(&pod("abc")).await.unwrap();
        assert_eq!(net.ips("abc"), Some(vec!["10.9.0.2".parse().unwrap()]));
        // A second setup of a wired container runs nothing.
        net.setup(&pod("abc")).await.unwrap();
        assert_eq!(plugin.setups.load(Ordering::SeqCst), 1);

        // After a restart the record is read back; its teardown runs once.
        let again = Network::new(plugin.clone(), root.path());
        assert_eq!(again.ips("abc"), Some(vec!["10.9.0.2".parse().unwrap()]));
        again.teardown("abc", None).await.unwrap();
        again.teardown("abc", None).await.unwrap();
        assert_eq!(plugin.teardowns.load(Ordering::SeqCst), 1);
        assert!(!root.path().join("network/abc.json").exists());
    }

    #[tokio::test]
    async fn a_pending_record_is_torn_down_before_the_next_setup() {
        let root = tempfile::tempdir().unwrap();
        let plugin = Arc::new(Counting::default());
        let dir = root.path().join("network");
        std::fs::create_dir_all(&dir).unwrap();
        // What a crash between the pending record and the setup leaves.
        std::fs::write(
            dir.join("abc.json"),
            r#"{"namespace":"default","name":"web","uid":"u1","record":null}"#,
        )
        .unwrap();
        let net = Network::new(plugin.clone(), root.path());
        assert_eq!(net.ips("abc"), None, "pending is not wired");
        net.setup(&pod("abc")).await.unwrap();
        assert_eq!(plugin.teardowns.load(Ordering::SeqCst), 1);
        assert_eq!(plugin.setups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_setup_is_undone_and_keeps_nothing() {
        let root = tempfile::tempdir().unwrap();
        let plugin = Arc::new(Counting {
            fail_setup: true,
            ..Default::default()
        });
        let net = Network::new(plugin.clone(), root.path());
        let e = net.setup(&pod("abc")).await.unwrap_err();
        assert!(e.to_string().contains("counting"), "{e}");
        assert_eq!(plugin.teardowns.load(Ordering::SeqCst), 1);
        assert_eq!(net.ips("abc"), None);
        assert!(!root.path().join("network/abc.json").exists());
    }

    #[tokio::test]
    async fn only_gone_infra_containers_listed_after_their_record_are_torn_down() {
        let root = tempfile::tempdir().unwrap();
        let plugin = Arc::new(Counting::default());
        let net = Network::new(plugin.clone(), root.path());
        net.setup(&pod("alive")).await.unwrap();
        net.setup(&pod("gone")).await.unwrap();
        let before = SystemTime::now() - std::time::Duration::from_secs(60);
        let running: HashSet<String> = ["alive".to_string()].into();
        // A list older than the records: nothing is judged gone.
        assert_eq!(net.tear_down_dead(&running, before).await, 0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(net.tear_down_dead(&running, SystemTime::now()).await, 1);
        assert_eq!(net.ips("gone"), None);
        assert!(net.ips("alive").is_some());
    }
}
