//! CNI (`--network-plugin=cni`): the network of the first configuration of
//! `--cni-conf-dir`, its plugins found in the bin dirs, ADD on setup, DEL
//! on teardown, CHECK on check; the ADD result kept in the record.
//!
//! - [`config`]: which file is the network and its serde types.
//! - [`invoke`]: one plugin call (environment, stdin, timeout, output).
//!
//! The configuration is read at `init` (an error stops podvisor) and read
//! again on each `setup`, so that an edit takes effect for the next pod.
//! What a `setup` returns to keep ([`Record`]) holds the network's name and
//! version, the final ADD result and the configuration list the ADD ran:
//! `check` and `teardown` run that same list (with the kept result as
//! `prevResult`), so a teardown after an edit of the configuration still
//! undoes what was done. Without a record (lost, or from elsewhere) they run
//! the configuration as it is now, without `prevResult` (host-local, bridge
//! and portmap still undo their part by container ID; Debian's firewall
//! 1.1.1 then leaves its rules for the pod's IP).
//!
//! Choices where the spec leaves one:
//! - `init` also requires every plugin of the chain in a bin dir;
//!   `serves_host_ports` is false until a configuration was read.
//! - A failed ADD is undone at once: DEL of the whole chain (reverse order,
//!   `prevResult` the last result obtained), then the ADD's error.
//! - DEL runs every plugin whatever the others did and reports all
//!   failures in one error; CHECK stops at the first; `disableCheck: true`
//!   makes `check` succeed without running anything.
//! - `runtimeConfig.portMappings` goes (possibly empty) to every plugin that
//!   declares the capability, on ADD, CHECK and DEL alike; a
//!   `runtimeConfig` written in the file is dropped (it is the runtime's).
//! - Results are not converted between versions: a plugin answers in the
//!   list's version, which is the one kept.
//!
//! Known: Debian's portmap 1.1.1 fails CHECK of a pod with host ports and
//! IPv4 only when ip6tables has a nat table (upstream plugins#819); a
//! caller that recreates sandboxes on a failed `check` should know it.
//! Debian's bridge 1.1.1 finds the addresses of its ipMasq rules in the
//! namespace: a teardown with `netns` `None` releases the address but
//! leaves those rules, so teardown belongs before the infra container goes.

pub mod config;
pub mod invoke;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::config::{NetConfList, PluginConf};
use self::invoke::{plugin_label, CniCommand};
use super::{NetworkError, NetworkPlugin, PodNetwork, Wired};

/// `--cni-conf-dir`'s default.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// `--cni-bin-dir`'s default.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const DEBIAN_BIN_DIR: &str = "/usr/lib/cni";

/// What a CNI `setup` keeps for the later calls of one infra container
/// ([`Wired::record`] / [`PodNetwork::record`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The network's `name`.
    pub network: String,
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The last plugin's ADD result: CHECK's and DEL's `prevResult`.
    pub result: Value,
    /// The configuration list the ADD ran, for CHECK and DEL; absent in a
    /// record written without it (the current configuration is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflist: Option<NetConfList>,
}

/// The CNI network plugin.
pub struct CniPlugin {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
    /// The configuration read last (at `init` and each `setup`), for
    /// `serves_host_ports`. A std lock: held across no `.await`.
    current: RwLock<Option<Arc<NetConfList>>>,
}

impl CniPlugin {
    /// `conf_dir`: where the network configuration is (`--cni-conf-dir`);
    /// `bin_dirs`: where plugins are looked for, in order (`--cni-bin-dir`,
    /// then e.g. [`DEBIAN_BIN_DIR`]), also `CNI_PATH`; `timeout`: for each
    /// plugin call ([`super::CALL_TIMEOUT`] in the daemon).
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>, timeout: Duration) -> CniPlugin {
        CniPlugin {
            conf_dir,
            bin_dirs,
            timeout,
            current: RwLock::new(None),
        }
    }

    /// The configuration read last, if any (`None` before `init`).
    pub fn network(&self) -> Option<Arc<NetConfList>> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Reads the configuration directory again and keeps what it says.
    async fn reload(&self) -> Result<Arc<NetConfList>, NetworkError> {
        let dir = self.conf_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&dir))
            .await
            .map_err(|e| NetworkError::Config {
                plugin: "cni".into(),
                message: format!(
                    "reading the CNI configuration in {} did not finish: {e}",
                    self.conf_dir.display()
                ),
            })?;
        let (path, list) = loaded?;
        tracing::debug!(file = %path.display(), network = %list.name, "CNI configuration read");
        let list = Arc::new(list);
        if let Ok(mut current) = self.current.write() {
            *current = Some(list.clone());
        }
        Ok(list)
    }

    /// One plugin of `list` for `pod`; errors say which network and
    /// container the call was for.
    async fn call(
        &self,
        list: &NetConfList,
        plugin: &PluginConf,
        command: CniCommand,
        pod: &PodNetwork,
        prev_result: Option<&Value>,
    ) -> Result<Option<Value>, NetworkError> {
        let context = |e: NetworkError| match e {
            NetworkError::Failed {
                plugin,
                call,
                message,
            } => NetworkError::Failed {
                plugin,
                call,
                message: format!(
                    "network {:?}, container {}: {message}",
                    list.name, pod.infra_id
                ),
            },
            other => other,
        };
        let binary = invoke::find_binary(&plugin.plugin_type, &self.bin_dirs).await?;
        let env = invoke::environment(command, pod, &self.bin_dirs);
        let stdin = invoke::stdin_config(list, plugin, prev_result, &pod.ports).to_string();
        tracing::debug!(
            plugin = %plugin.plugin_type, command = command.as_str(),
            container = %pod.infra_id, "CNI call"
        );
        let out = invoke::run(
            &binary,
            &plugin.plugin_type,
            command,
            &env,
            stdin.as_bytes(),
            self.timeout,
        )
        .await?;
        invoke::interpret(&plugin.plugin_type, command, &out).map_err(context)
    }

    /// DEL of each plugin of `list` in reverse order, every one of them
    /// whatever the others did; all the errors in one.
    async fn del_all(
        &self,
        list: &NetConfList,
        pod: &PodNetwork,
        prev_result: Option<&Value>,
    ) -> Result<(), NetworkError> {
        let mut errors = Vec::new();
        for plugin in list.plugins.iter().rev() {
            if let Err(e) = self
                .call(list, plugin, CniCommand::Del, pod, prev_result)
                .await
            {
                errors.push((plugin.plugin_type.clone(), e));
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0).1),
            _ => {
                let types: Vec<String> = errors.iter().map(|(t, _)| t.clone()).collect();
                let messages: Vec<String> = errors.iter().map(|(_, e)| e.to_string()).collect();
                Err(NetworkError::Failed {
                    plugin: format!("cni/{}", types.join(",")),
                    call: "DEL",
                    message: format!("{} plugins failed: {}", errors.len(), messages.join("; ")),
                })
            }
        }
    }

    /// The kept record of `pod`, for `call`.
    fn record(pod: &PodNetwork, call: &'static str) -> Result<Record, NetworkError> {
        let failed = |message: String| NetworkError::Failed {
            plugin: "cni".into(),
            call,
            message,
        };
        let value = pod.record.as_ref().ok_or_else(|| {
            failed(format!(
                "no kept ADD result for container {} (was it set up?)",
                pod.infra_id
            ))
        })?;
        serde_json::from_value(value.clone()).map_err(|e| {
            failed(format!(
                "the kept record of container {} is not a CNI record: {e}",
                pod.infra_id
            ))
        })
    }

    /// The list a kept record ran, or the configuration as it is now.
    async fn list_for(&self, record: Option<&Record>) -> Result<Arc<NetConfList>, NetworkError> {
        match record.and_then(|r| r.conflist.clone()) {
            Some(list) => Ok(Arc::new(list)),
            None => self.reload().await,
        }
    }
}

#[async_trait]
impl NetworkPlugin for CniPlugin {
    fn name(&self) -> &str {
        "cni"
    }

    fn infra_network_mode(&self) -> Option<&'static str> {
        Some("none")
    }

    fn serves_host_ports(&self) -> bool {
        self.network().is_some_and(|l| l.serves_host_ports())
    }

    async fn init(&self) -> Result<(), NetworkError> {
        let list = self.reload().await?;
        for plugin in &list.plugins {
            invoke::find_binary(&plugin.plugin_type, &self.bin_dirs).await?;
        }
        Ok(())
    }

    async fn setup(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
        let list = self.reload().await?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            match self
                .call(&list, plugin, CniCommand::Add, pod, prev.as_ref())
                .await
            {
                Ok(result) => prev = result,
                Err(e) => {
                    // Undo what the chain did so far (an address taken, a
                    // veth): nothing is kept of a failed setup to undo later.
                    if let Err(del) = self.del_all(&list, pod, prev.as_ref()).await {
                        tracing::warn!(container = %pod.infra_id, error = %del,
                            "CNI DEL after a failed ADD failed too");
                    }
                    return Err(e);
                }
            }
        }
        let last = list
            .plugins
            .last()
            .map(|p| p.plugin_type.as_str())
            .unwrap_or("");
        let result = prev.unwrap_or(Value::Null);
        let ips = invoke::result_ips(&result).map_err(|e| NetworkError::Failed {
            plugin: plugin_label(last),
            call: "ADD",
            message: format!("network {:?}, container {}: {e}", list.name, pod.infra_id),
        })?;
        let record = Record {
            network: list.name.clone(),
            cni_version: list.cni_version.clone(),
            result,
            conflist: Some((*list).clone()),
        };
        let record = serde_json::to_value(&record).map_err(|e| NetworkError::Failed {
            plugin: "cni".into(),
            call: "ADD",
            message: format!("the record does not serialize: {e}"),
        })?;
        Ok(Wired { ips, record })
    }

    async fn status(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
        let record = Self::record(pod, "status")?;
        let ips = invoke::result_ips(&record.result).map_err(|e| NetworkError::Failed {
            plugin: "cni".into(),
            call: "status",
            message: format!("container {}: {e}", pod.infra_id),
        })?;
        Ok(Wired {
            ips,
            record: pod.record.clone().unwrap_or_default(),
        })
    }

    async fn check(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        let record = Self::record(pod, "CHECK")?;
        let list = self.list_for(Some(&record)).await?;
        if list.disable_check {
            return Ok(());
        }
        if pod.netns.is_none() {
            return Err(NetworkError::Failed {
                plugin: "cni".into(),
                call: "CHECK",
                message: format!("container {} has no network namespace", pod.infra_id),
            });
        }
        for plugin in &list.plugins {
            // Debian's portmap 1.1.1 fails CHECK of every IPv4-only pod
            // with host ports when ip6tables has a nat table
            // (containernetworking/plugins#819): its CHECK would recreate
            // such pods' sandboxes every 5 minutes. Its rules are still
            // made by ADD and removed by DEL.
            if plugin.plugin_type == "portmap" {
                continue;
            }
            self.call(&list, plugin, CniCommand::Check, pod, Some(&record.result))
                .await?;
        }
        Ok(())
    }

    async fn teardown(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        let record = match pod.record {
            None => None,
            Some(_) => match Self::record(pod, "DEL") {
                Ok(r) => Some(r),
                Err(e) => {
                    // Still undo what can be undone without it.
                    tracing::warn!(error = %e, "CNI DEL without prevResult");
                    None
                }
            },
        };
        let list = self.list_for(record.as_ref()).await?;
        self.del_all(&list, pod, record.as_ref().map(|r| &r.result))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use serde_json::json;

    use crate::runtime::PortMapping;

    /// A tempdir with `conf/`, `bin/` (fake plugins) and `log/` (what the
    /// fakes saw: `<name>.<COMMAND>.stdin`, `.env`, and `calls` in order).
    struct Fakes {
        dir: tempfile::TempDir,
    }

    /// What a fake plugin does after recording its input.
    enum Does {
        /// Prints this and exits 0.
        Print(Value),
        /// Prints this (a JSON error or garbage) and exits 1.
        Fail(String),
        /// Prints this and exits 0.
        PrintRaw(String),
        /// Sleeps far past any test timeout.
        Hang,
    }

    impl Fakes {
        fn new() -> Fakes {
            let dir = tempfile::tempdir().unwrap();
            for sub in ["conf", "bin", "log", "out"] {
                std::fs::create_dir(dir.path().join(sub)).unwrap();
            }
            Fakes { dir }
        }

        fn path(&self, sub: &str) -> PathBuf {
            self.dir.path().join(sub)
        }

        fn conf(&self, file: &str, value: Value) {
            std::fs::write(self.path("conf").join(file), value.to_string()).unwrap();
        }

        fn plugin(&self, name: &str, does: Does) {
            self.plugin_in(&self.path("bin"), name, does);
        }

        fn plugin_in(&self, bin: &Path, name: &str, does: Does) {
            let out = self.path("out").join(name);
            let log = self.path("log");
            let tail = match does {
                Does::Print(v) => {
                    std::fs::write(&out, v.to_string()).unwrap();
                    format!("cat '{}'", out.display())
                }
                Does::PrintRaw(s) => {
                    std::fs::write(&out, s).unwrap();
                    format!("cat '{}'", out.display())
                }
                Does::Fail(s) => {
                    std::fs::write(&out, s).unwrap();
                    format!("cat '{}'; exit 1", out.display())
                }
                Does::Hang => format!("echo $$ > '{}/{name}.pid'; sleep 60", log.display()),
            };
            let script = format!(
                "#!/bin/sh\n\
                 log='{log}'\n\
                 cat > \"$log/{name}.$CNI_COMMAND.stdin\"\n\
                 env | grep '^CNI_' | sort > \"$log/{name}.$CNI_COMMAND.env\"\n\
                 echo \"$CNI_COMMAND {name}\" >> \"$log/calls\"\n\
                 {tail}\n",
                log = log.display()
            );
            let path = bin.join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn cni(&self) -> CniPlugin {
            CniPlugin::new(
                self.path("conf"),
                vec![self.path("bin")],
                Duration::from_secs(10),
            )
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.path("log").join("calls"))
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect()
        }

        fn stdin(&self, name: &str, command: &str) -> Value {
            let path = self.path("log").join(format!("{name}.{command}.stdin"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_str(&text).unwrap()
        }

        fn env(&self, name: &str, command: &str) -> String {
            std::fs::read_to_string(self.path("log").join(format!("{name}.{command}.env"))).unwrap()
        }
    }

    fn chain(plugins: &[Value]) -> Value {
        json!({"cniVersion": "1.0.0", "name": "testnet", "plugins": plugins})
    }

    fn result(ip: &str) -> Value {
        json!({"cniVersion": "1.0.0",
               "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/t"}],
               "ips": [{"address": ip, "gateway": "10.9.0.1", "interface": 0}]})
    }

    fn pod() -> PodNetwork {
        PodNetwork {
            namespace: "ns1".into(),
            name: "web".into(),
            uid: "uid-1".into(),
            infra_id: "infra0123".into(),
            netns: Some("/var/run/netns/t".into()),
            ports: vec![PortMapping {
                container_port: 80,
                protocol: "TCP".into(),
                host_port: Some(8080),
                host_ip: None,
            }],
            record: None,
        }
    }

    #[tokio::test]
    async fn setup_runs_the_chain_in_order_each_result_the_next_prev_result() {
        let f = Fakes::new();
        f.conf(
            "10-test.conflist",
            chain(&[
                json!({"type": "first", "bridge": "b0", "ipam": {"type": "x"}}),
                json!({"type": "second", "capabilities": {"portMappings": true}}),
            ]),
        );
        let r1 = result("10.9.0.5/24");
        let mut r2 = result("10.9.0.5/24");
        r2["ips"]
            .as_array_mut()
            .unwrap()
            .push(json!({"address": "fd00::5/64"}));
        f.plugin("first", Does::Print(r1.clone()));
        f.plugin("second", Does::Print(r2.clone()));
        let cni = f.cni();
        cni.init().await.unwrap();
        let wired = cni.setup(&pod()).await.unwrap();

        assert_eq!(f.calls(), ["ADD first", "ADD second"]);
        assert_eq!(
            wired.ips,
            vec![
                "10.9.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse::<IpAddr>().unwrap()
            ]
        );
        let first = f.stdin("first", "ADD");
        assert_eq!(first["name"], "testnet");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert_eq!(first["bridge"], "b0");
        assert!(first.get("prevResult").is_none(), "{first}");
        assert!(first.get("runtimeConfig").is_none(), "{first}");
        let second = f.stdin("second", "ADD");
        assert_eq!(second["prevResult"], r1);
        assert_eq!(
            second["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        let env = f.env("first", "ADD");
        for line in [
            "CNI_COMMAND=ADD",
            "CNI_CONTAINERID=infra0123",
            "CNI_NETNS=/var/run/netns/t",
            "CNI_IFNAME=eth0",
            &format!("CNI_PATH={}", f.path("bin").display()),
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=infra0123;K8S_POD_UID=uid-1",
        ] {
            assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
        }

        let record: Record = serde_json::from_value(wired.record.clone()).unwrap();
        assert_eq!(record.network, "testnet");
        assert_eq!(record.cni_version, "1.0.0");
        assert_eq!(record.result, r2);
        assert_eq!(record.conflist.unwrap().plugins.len(), 2);
        assert!(!cni.serves_host_ports(), "second is not portmap");
    }

    #[tokio::test]
    async fn status_gives_the_kept_ips_without_running_a_plugin() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "only"})]));
        f.plugin("only", Does::Print(result("10.9.0.7/24")));
        let cni = f.cni();
        cni.init().await.unwrap();
        let wired = cni.setup(&pod()).await.unwrap();
        let mut p = pod();
        p.record = Some(wired.record.clone());
        let status = cni.status(&p).await.unwrap();
        assert_eq!(status.ips, vec!["10.9.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(status.record, wired.record);
        assert_eq!(f.calls(), ["ADD only"]);
        let (_, call, m) = NetworkError::into_failed(cni.status(&pod()).await.unwrap_err());
        assert_eq!(call, "status");
        assert!(
            m.contains("no kept ADD result") && m.contains("infra0123"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn check_runs_in_order_with_the_kept_result_and_stops_at_an_error() {
        let f = Fakes::new();
        f.conf(
            "10-t.conflist",
            chain(&[
                json!({"type": "a"}),
                json!({"type": "b"}),
                json!({"type": "c"}),
            ]),
        );
        f.plugin("a", Does::Print(result("10.9.0.8/24")));
        f.plugin("b", Does::Print(result("10.9.0.8/24")));
        f.plugin("c", Does::Print(result("10.9.0.8/24")));
        let cni = f.cni();
        let wired = cni.setup(&pod()).await.unwrap();
        let mut p = pod();
        p.record = Some(wired.record);
        // CHECK succeeds printing nothing; these print a result: also fine.
        cni.check(&p).await.unwrap();
        assert_eq!(
            f.calls()[3..],
            ["CHECK a".to_string(), "CHECK b".into(), "CHECK c".into()]
        );
        assert_eq!(f.stdin("b", "CHECK")["prevResult"], result("10.9.0.8/24"));
        assert!(f.env("a", "CHECK").contains("CNI_COMMAND=CHECK"));

        f.plugin(
            "b",
            Does::Fail(r#"{"code": 100, "msg": "veth gone", "details": "eth0"}"#.into()),
        );
        let (plugin, call, m) = NetworkError::into_failed(cni.check(&p).await.unwrap_err());
        assert_eq!((plugin.as_str(), call), ("cni/b", "CHECK"));
        assert!(
            m.contains("veth gone (eth0)") && m.contains("testnet"),
            "{m}"
        );
        assert_eq!(f.calls().last().unwrap(), "CHECK b");

        let (_, _, m) = NetworkError::into_failed(cni.check(&pod()).await.unwrap_err());
        assert!(m.contains("no kept ADD result"), "{m}");
    }

    #[tokio::test]
    async fn check_is_skipped_when_the_list_disables_it() {
        let f = Fakes::new();
        let mut list = chain(&[json!({"type": "a"})]);
        list["disableCheck"] = json!(true);
        f.conf("10-t.conflist", list);
        f.plugin("a", Does::Print(result("10.9.0.9/24")));
        let cni = f.cni();
        let mut p = pod();
        p.record = Some(cni.setup(&p).await.unwrap().record);
        cni.check(&p).await.unwrap();
        assert_eq!(f.calls(), ["ADD a"]);
    }

    #[tokio::test]
    async fn teardown_runs_del_in_reverse_and_goes_on_past_errors() {
        let f = Fakes::new();
        f.conf(
            "10-t.conflist",
            chain(&[
                json!({"type": "a"}),
                json!({"type": "b"}),
                json!({"type": "c"}),
            ]),
        );
        for name in ["a", "b", "c"] {
            f.plugin(name, Does::Print(result("10.9.0.10/24")));
        }
        let cni = f.cni();
        let mut p = pod();
        p.record = Some(cni.setup(&p).await.unwrap().record);
        f.plugin(
            "c",
            Does::Fail(r#"{"cniVersion":"1.0.0","code":11,"msg":"busy"}"#.into()),
        );
        f.plugin("b", Does::PrintRaw("this is not json".into()));
        f.plugin("a", Does::PrintRaw(String::new()));
        let (plugin, call, m) = NetworkError::into_failed(cni.teardown(&p).await.unwrap_err());
        assert_eq!(
            f.calls()[3..],
            ["DEL c".to_string(), "DEL b".into(), "DEL a".into()]
        );
        assert_eq!((plugin.as_str(), call), ("cni/c,b", "DEL"));
        assert!(m.contains("error 11: busy"), "{m}");
        assert!(m.contains("\"this is not json\""), "{m}");
        assert_eq!(f.stdin("a", "DEL")["prevResult"], result("10.9.0.10/24"));

        // All succeed (printing nothing): the teardown does, again and again.
        f.plugin("b", Does::PrintRaw(String::new()));
        f.plugin("c", Does::PrintRaw(String::new()));
        cni.teardown(&p).await.unwrap();
        cni.teardown(&p).await.unwrap();
    }

    #[tokio::test]
    async fn teardown_without_record_or_netns_runs_the_current_configuration() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "a"})]));
        f.plugin("a", Does::PrintRaw(String::new()));
        let cni = f.cni();
        let mut p = pod();
        p.netns = None;
        cni.teardown(&p).await.unwrap();
        assert_eq!(f.calls(), ["DEL a"]);
        let stdin = f.stdin("a", "DEL");
        assert!(stdin.get("prevResult").is_none(), "{stdin}");
        assert_eq!(stdin["name"], "testnet");
        assert!(f.env("a", "DEL").lines().any(|l| l == "CNI_NETNS="));
    }

    #[tokio::test]
    async fn teardown_runs_the_list_the_add_ran_after_the_configuration_changed() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "a"})]));
        f.plugin("a", Does::Print(result("10.9.0.11/24")));
        f.plugin("z", Does::PrintRaw(String::new()));
        let cni = f.cni();
        let mut p = pod();
        p.record = Some(cni.setup(&p).await.unwrap().record);
        f.conf(
            "10-t.conflist",
            json!({"cniVersion": "1.0.0", "name": "othernet", "plugins": [{"type": "z"}]}),
        );
        f.plugin("a", Does::PrintRaw(String::new()));
        cni.teardown(&p).await.unwrap();
        assert_eq!(f.calls(), ["ADD a", "DEL a"]);
        assert_eq!(f.stdin("a", "DEL")["name"], "testnet");
        // The next setup reads the edited configuration.
        f.plugin("z", Does::Print(result("10.9.0.12/24")));
        let record: Record =
            serde_json::from_value(cni.setup(&pod()).await.unwrap().record).unwrap();
        assert_eq!(record.network, "othernet");
    }

    #[tokio::test]
    async fn a_failed_add_undoes_the_chain_and_returns_the_add_error() {
        let f = Fakes::new();
        f.conf(
            "10-t.conflist",
            chain(&[json!({"type": "a"}), json!({"type": "b"})]),
        );
        f.plugin("a", Does::Print(result("10.9.0.13/24")));
        f.plugin(
            "b",
            Does::Fail(r#"{"code":7,"msg":"no more ports","details":"x"}"#.into()),
        );
        let cni = f.cni();
        let (plugin, call, m) = NetworkError::into_failed(cni.setup(&pod()).await.unwrap_err());
        assert_eq!((plugin.as_str(), call), ("cni/b", "ADD"));
        assert!(
            m.contains("no more ports") && m.contains("infra0123"),
            "{m}"
        );
        assert_eq!(f.calls(), ["ADD a", "ADD b", "DEL b", "DEL a"]);
        assert_eq!(f.stdin("a", "DEL")["prevResult"], result("10.9.0.13/24"));
    }

    #[tokio::test]
    async fn garbage_from_an_add_fails_naming_the_plugin() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "noisy"})]));
        f.plugin("noisy", Does::PrintRaw("Segmentation fault\n".repeat(100)));
        let (plugin, call, m) = NetworkError::into_failed(f.cni().setup(&pod()).await.unwrap_err());
        assert_eq!((plugin.as_str(), call), ("cni/noisy", "ADD"));
        assert!(m.contains("not a JSON result: \"Segmentation fault"), "{m}");
        assert!(m.len() < 700, "{m}");
    }

    #[tokio::test]
    async fn a_hanging_plugin_is_killed_with_its_children_after_the_timeout() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "stuck"})]));
        f.plugin("stuck", Does::Hang);
        let cni = CniPlugin::new(
            f.path("conf"),
            vec![f.path("bin")],
            Duration::from_millis(500),
        );
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(20), cni.teardown(&pod()))
            .await
            .expect("the call outlived its timeout");
        assert!(started.elapsed() < Duration::from_secs(10));
        match err.unwrap_err() {
            NetworkError::Timeout {
                plugin,
                call,
                after,
            } => {
                assert_eq!((plugin.as_str(), call), ("cni/stuck", "DEL"));
                assert_eq!(after, Duration::from_millis(500));
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        // The shell and its `sleep` (its process group) are gone.
        let pid: i32 = std::fs::read_to_string(f.path("log").join("stuck.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut alive = true;
        for _ in 0..50 {
            // SAFETY: signal 0 only asks whether the group exists.
            alive = unsafe { libc::kill(-pid, 0) } == 0;
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!alive, "process group {pid} still alive");
    }

    #[tokio::test]
    async fn a_missing_plugin_names_its_type_and_the_dirs_searched() {
        let f = Fakes::new();
        f.conf("10-t.conflist", chain(&[json!({"type": "nowhere"})]));
        let other = f.path("other");
        let cni = CniPlugin::new(
            f.path("conf"),
            vec![f.path("bin"), other.clone()],
            Duration::from_secs(5),
        );
        for err in [
            cni.init().await.unwrap_err(),
            cni.setup(&pod()).await.unwrap_err(),
        ] {
            match err {
                NetworkError::Config { plugin, message } => {
                    assert_eq!(plugin, "cni/nowhere");
                    assert!(message.contains("\"nowhere\""), "{message}");
                    assert!(
                        message.contains(&f.path("bin").display().to_string()),
                        "{message}"
                    );
                    assert!(message.contains(&other.display().to_string()), "{message}");
                }
                other => panic!("expected Config, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn plugins_are_found_in_the_first_bin_dir_that_has_them() {
        let f = Fakes::new();
        let second = f.path("bin2");
        std::fs::create_dir(&second).unwrap();
        f.conf(
            "10-t.conflist",
            chain(&[json!({"type": "a"}), json!({"type": "b"})]),
        );
        f.plugin("a", Does::Print(result("10.9.0.14/24")));
        f.plugin_in(&second, "a", Does::Fail("{}".into()));
        f.plugin_in(&second, "b", Does::Print(result("10.9.0.15/24")));
        let cni = CniPlugin::new(
            f.path("conf"),
            vec![f.path("bin"), second.clone()],
            Duration::from_secs(5),
        );
        let wired = cni.setup(&pod()).await.unwrap();
        assert_eq!(wired.ips, vec!["10.9.0.15".parse::<IpAddr>().unwrap()]);
        let path = format!("CNI_PATH={}:{}", f.path("bin").display(), second.display());
        assert!(f.env("b", "ADD").lines().any(|l| l == path));
    }

    #[tokio::test]
    async fn init_refuses_a_bad_configuration_naming_the_file() {
        let f = Fakes::new();
        let cni = f.cni();
        match cni.init().await.unwrap_err() {
            NetworkError::Config { message, .. } => {
                assert!(
                    message.contains("no CNI network configuration"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        f.conf(
            "10-t.conflist",
            json!({"cniVersion": "0.2.0", "name": "n", "plugins": []}),
        );
        match cni.init().await.unwrap_err() {
            NetworkError::Config { message, .. } => {
                assert!(message.contains("10-t.conflist"), "{message}");
                assert!(message.contains("0.2.0"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!cni.serves_host_ports());
        assert!(cni.network().is_none());
    }

    #[tokio::test]
    async fn serves_host_ports_follows_the_loaded_chain() {
        let f = Fakes::new();
        f.conf(
            "10-t.conflist",
            chain(&[
                json!({"type": "a"}),
                json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            ]),
        );
        f.plugin("a", Does::Print(result("10.9.0.16/24")));
        f.plugin("portmap", Does::Print(result("10.9.0.16/24")));
        let cni = f.cni();
        assert!(!cni.serves_host_ports(), "nothing loaded before init");
        cni.init().await.unwrap();
        assert!(cni.serves_host_ports());
        assert_eq!(cni.name(), "cni");
        assert_eq!(cni.infra_network_mode(), Some("none"));
    }
}
