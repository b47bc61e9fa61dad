//! One plugin call: its environment and stdin as the CNI spec says, the
//! child under a timeout, and its stdout read as a result or an error.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::config::{NetConfList, PluginConf, PORT_MAPPINGS};
use crate::network::{NetworkError, PodNetwork};
use crate::runtime::PortMapping;

/// The interface the plugins make in the pod's namespace.
pub const IFNAME: &str = "eth0";

/// How much of a plugin's stdout or stderr is kept (the rest is read and
/// dropped, so the plugin does not block on a full pipe).
const OUTPUT_CAP: usize = 1 << 20;

/// How much of unexpected output an error message quotes.
const QUOTE_CAP: usize = 300;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

/// `plugin` of a [`NetworkError`] for one plugin of the chain.
pub fn plugin_label(plugin_type: &str) -> String {
    format!("cni/{plugin_type}")
}

/// `CNI_ARGS`: the kubelet's keys, with `IgnoreUnknown` so that plugins
/// that do not know them accept them.
pub fn cni_args(pod: &PodNetwork) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.infra_id, pod.uid
    )
}

/// The environment of a call (on top of podvisor's own).
pub fn environment(
    command: CniCommand,
    pod: &PodNetwork,
    bin_dirs: &[PathBuf],
) -> Vec<(String, OsString)> {
    let mut path = OsString::new();
    for (i, dir) in bin_dirs.iter().enumerate() {
        if i > 0 {
            path.push(":");
        }
        path.push(dir.as_os_str());
    }
    vec![
        ("CNI_COMMAND".into(), command.as_str().into()),
        ("CNI_CONTAINERID".into(), pod.infra_id.clone().into()),
        (
            "CNI_NETNS".into(),
            pod.netns
                .as_ref()
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        ),
        ("CNI_IFNAME".into(), IFNAME.into()),
        ("CNI_PATH".into(), path),
        ("CNI_ARGS".into(), cni_args(pod).into()),
    ]
}

/// `runtimeConfig.portMappings`: the pod's ports that have a `hostPort`.
pub fn port_mappings(ports: &[PortMapping]) -> Value {
    let list: Vec<Value> = ports
        .iter()
        .filter_map(|p| {
            let host_port = p.host_port.filter(|&h| h != 0)?;
            let mut m = Map::new();
            m.insert("hostPort".into(), json!(host_port));
            m.insert("containerPort".into(), json!(p.container_port));
            m.insert("protocol".into(), json!(p.protocol.to_ascii_lowercase()));
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                m.insert("hostIP".into(), json!(ip));
            }
            Some(Value::Object(m))
        })
        .collect();
    Value::Array(list)
}

/// What a plugin reads on stdin: its own configuration with the list's
/// `name` and `cniVersion`, the `prevResult` when there is one, and the
/// runtime arguments of the capabilities it declares.
pub fn stdin_config(
    list: &NetConfList,
    plugin: &PluginConf,
    prev_result: Option<&Value>,
    ports: &[PortMapping],
) -> Value {
    let mut object = match serde_json::to_value(plugin) {
        Ok(Value::Object(o)) => o,
        // PluginConf always serializes to an object; keep the type at least.
        _ => {
            let mut o = Map::new();
            o.insert("type".into(), json!(plugin.plugin_type));
            o
        }
    };
    object.insert("name".into(), json!(list.name));
    object.insert("cniVersion".into(), json!(list.cni_version));
    match prev_result {
        Some(prev) => {
            object.insert("prevResult".into(), prev.clone());
        }
        None => {
            object.remove("prevResult");
        }
    }
    // runtimeConfig is the runtime's to write: only for declared capabilities.
    object.remove("runtimeConfig");
    if plugin.has_capability(PORT_MAPPINGS) {
        let mut runtime = Map::new();
        runtime.insert(PORT_MAPPINGS.into(), port_mappings(ports));
        object.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    Value::Object(object)
}

/// A plugin's error on stdout.
#[derive(Debug, Deserialize)]
struct ErrorOut {
    code: Value,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// The part of an ADD result podvisor reads (the whole result is kept as
/// JSON). 0.4.0 and 1.0.0 both have `ips[].address` (`1.0.0` dropped
/// `version`).
#[derive(Debug, Deserialize)]
struct ResultIps {
    #[serde(default)]
    ips: Vec<IpConf>,
}

#[derive(Debug, Deserialize)]
struct IpConf {
    address: String,
}

/// An ADD result podvisor cannot read the IPs of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadResult(pub String);

/// The IPs of an ADD result, without their prefix length.
pub fn result_ips(result: &Value) -> Result<Vec<IpAddr>, BadResult> {
    let parsed: ResultIps = serde_json::from_value(result.clone())
        .map_err(|e| BadResult(format!("the result's \"ips\": {e}")))?;
    parsed
        .ips
        .iter()
        .map(|ip| {
            let addr = ip.address.split('/').next().unwrap_or_default();
            addr.parse::<IpAddr>()
                .map_err(|e| BadResult(format!("the result's address {:?}: {e}", ip.address)))
        })
        .collect()
}

/// A bounded, printable prefix of some output.
pub fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.chars().count() <= QUOTE_CAP {
        format!("{text:?}")
    } else {
        let prefix: String = text.chars().take(QUOTE_CAP).collect();
        format!("{prefix:?}... ({} bytes)", bytes.len())
    }
}

/// What a finished plugin process gave.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub status: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Reads a plugin's output: `Ok(Some(result))` for a result, `Ok(None)`
/// for the empty success of a DEL or CHECK, an error for an error result,
/// a failed exit or output that is not JSON.
pub fn interpret(
    plugin_type: &str,
    command: CniCommand,
    out: &Output,
) -> Result<Option<Value>, NetworkError> {
    let failed = |message: String| NetworkError::Failed {
        plugin: plugin_label(plugin_type),
        call: command.as_str(),
        message,
    };
    let stderr = if out.stderr.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        format!("; stderr: {}", quote(&out.stderr))
    };
    let trimmed = out.stdout.trim_ascii();
    let parsed: Option<Value> = serde_json::from_slice(trimmed).ok();
    if let Some(Value::Object(o)) = &parsed {
        if o.contains_key("code") {
            if let Ok(e) = serde_json::from_value::<ErrorOut>(Value::Object(o.clone())) {
                let details = if e.details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.details)
                };
                return Err(failed(format!(
                    "error {}: {}{details} [{}]{stderr}",
                    e.code, e.msg, out.status
                )));
            }
        }
    }
    if !out.success {
        let stdout = if trimmed.is_empty() {
            String::new()
        } else {
            format!("; stdout: {}", quote(trimmed))
        };
        return Err(failed(format!("{}{stdout}{stderr}", out.status)));
    }
    match parsed {
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        None if trimmed.is_empty() && command != CniCommand::Add => Ok(None),
        None if trimmed.is_empty() => Err(failed(format!("no result on stdout{stderr}"))),
        _ => Err(failed(format!(
            "stdout is not a JSON result: {}{stderr}",
            quote(trimmed)
        ))),
    }
}

/// Finds `<bin_dir>/<type>` in the first bin dir that has it.
pub async fn find_binary(plugin_type: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, NetworkError> {
    for dir in bin_dirs {
        let path = dir.join(plugin_type);
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            return Ok(path);
        }
    }
    let dirs: Vec<String> = bin_dirs.iter().map(|d| d.display().to_string()).collect();
    Err(NetworkError::Config {
        plugin: plugin_label(plugin_type),
        message: format!(
            "no executable {plugin_type:?} in the CNI bin dirs [{}]",
            dirs.join(", ")
        ),
    })
}

/// Runs one plugin: `stdin` written, stdout and stderr read (bounded),
/// all within `timeout`, after which the plugin and its process group
/// are killed.
pub async fn run(
    binary: &Path,
    plugin_type: &str,
    command: CniCommand,
    env: &[(String, OsString)],
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output, NetworkError> {
    let mut child = spawn(binary, plugin_type, env).await?;
    let pid = child.id();
    let mut input = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let write = async {
            if let Some(mut input) = input.take() {
                // A plugin that exits without reading its stdin is not an
                // error of ours: its exit status says what happened.
                let _ = input.write_all(stdin).await;
                let _ = input.shutdown().await;
            }
        };
        let (_, out, err, status) = tokio::join!(
            write,
            read_capped(stdout),
            read_capped(stderr),
            child.wait()
        );
        (out, err, status)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((stdout, stderr, status)) => {
            let status = status.map_err(|e| NetworkError::Failed {
                plugin: plugin_label(plugin_type),
                call: command.as_str(),
                message: format!("waiting for {}: {e}", binary.display()),
            })?;
            Ok(Output {
                success: status.success(),
                status: status.to_string(),
                stdout,
                stderr,
            })
        }
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The plugin leads its own process group: end what it
                // started too (kill_on_drop ends the plugin alone).
                // SAFETY: kill(2) with a negative pid signals that group.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            Err(NetworkError::Timeout {
                plugin: plugin_label(plugin_type),
                call: command.as_str(),
                after: timeout,
            })
        }
    }
}

async fn spawn(
    binary: &Path,
    plugin_type: &str,
    env: &[(String, OsString)],
) -> Result<tokio::process::Child, NetworkError> {
    let mut attempts = 0;
    loop {
        let mut cmd = Command::new(binary);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            // ETXTBSY: the binary is being replaced (an upgrade) or was just
            // written by a process that forked meanwhile; it passes.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 5 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempts)).await;
            }
            Err(e) => {
                return Err(NetworkError::Config {
                    plugin: plugin_label(plugin_type),
                    message: format!("cannot run {}: {e}", binary.display()),
                })
            }
        }
    }
}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let _ = (&mut reader)
        .take(OUTPUT_CAP as u64)
        .read_to_end(&mut kept)
        .await;
    // Past the cap: drain so that the plugin can finish.
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodNetwork {
        PodNetwork {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u-1".into(),
            infra_id: "abc123".into(),
            netns: Some("/var/run/netns/x".into()),
            ports: vec![],
            record: None,
        }
    }

    fn list() -> NetConfList {
        NetConfList::parse(
            Path::new("l.conflist"),
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[
                {"type":"bridge","name":"ignored","cniVersion":"0.1.0","runtimeConfig":{"x":1},"bridge":"b0"},
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":true},"snat":true}]}"#,
        )
        .unwrap()
    }

    fn ports() -> Vec<PortMapping> {
        vec![
            PortMapping {
                container_port: 80,
                protocol: "TCP".into(),
                host_port: Some(8080),
                host_ip: None,
            },
            PortMapping {
                container_port: 53,
                protocol: "UDP".into(),
                host_port: Some(5353),
                host_ip: Some("127.0.0.1".into()),
            },
            PortMapping {
                container_port: 9000,
                protocol: "TCP".into(),
                host_port: None,
                host_ip: None,
            },
        ]
    }

    #[test]
    fn cni_args_carry_the_kubelet_keys() {
        assert_eq!(
            cni_args(&pod()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1"
        );
    }

    #[test]
    fn environment_names_the_command_container_netns_and_path() {
        let bins = vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")];
        let env = environment(CniCommand::Del, &pod(), &bins);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("CNI_COMMAND"), "DEL");
        assert_eq!(get("CNI_CONTAINERID"), "abc123");
        assert_eq!(get("CNI_NETNS"), "/var/run/netns/x");
        assert_eq!(get("CNI_IFNAME"), "eth0");
        assert_eq!(get("CNI_PATH"), "/opt/cni/bin:/usr/lib/cni");
        let mut gone = pod();
        gone.netns = None;
        let env = environment(CniCommand::Del, &gone, &bins);
        assert_eq!(env.iter().find(|(n, _)| n == "CNI_NETNS").unwrap().1, "");
    }

    #[test]
    fn stdin_gets_the_list_name_and_version_and_no_stray_runtime_config() {
        let list = list();
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let v = stdin_config(&list, &list.plugins[0], Some(&prev), &ports());
        assert_eq!(v["name"], "net");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["type"], "bridge");
        assert_eq!(v["bridge"], "b0");
        assert_eq!(v["prevResult"], prev);
        // bridge declares no capability: no runtimeConfig, not even its own.
        assert!(v.get("runtimeConfig").is_none(), "{v}");
        let v = stdin_config(&list, &list.plugins[0], None, &ports());
        assert!(v.get("prevResult").is_none(), "{v}");
    }

    #[test]
    fn port_mappings_reach_only_plugins_with_the_capability() {
        let list = list();
        let v = stdin_config(&list, &list.plugins[1], None, &ports());
        assert_eq!(
            v["runtimeConfig"],
            json!({"portMappings":[
                {"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                {"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]})
        );
        assert_eq!(v["capabilities"]["bandwidth"], json!(true));
        // No hostPort at all: an empty list, so that a DEL still cleans up.
        let v = stdin_config(&list, &list.plugins[1], None, &[]);
        assert_eq!(v["runtimeConfig"], json!({"portMappings":[]}));
    }

    fn out(success: bool, stdout: &str, stderr: &str) -> Output {
        Output {
            success,
            status: if success {
                "exit status: 0"
            } else {
                "exit status: 1"
            }
            .into(),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn results_of_both_versions_give_their_ips_without_prefix() {
        let v040 = json!({"cniVersion":"0.4.0",
            "interfaces":[{"name":"eth0","sandbox":"/x"}],
            "ips":[{"version":"4","address":"10.88.7.5/24","gateway":"10.88.7.1","interface":0},
                   {"version":"6","address":"fd00::5/64","interface":0}]});
        let got = interpret("bridge", CniCommand::Add, &out(true, &v040.to_string(), "")).unwrap();
        assert_eq!(got, Some(v040.clone()));
        assert_eq!(
            result_ips(&v040).unwrap(),
            vec![
                "10.88.7.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let v100 = json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/16","interface":2}],
                          "dns":{}});
        assert_eq!(
            result_ips(&v100).unwrap(),
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert!(result_ips(&json!({"cniVersion":"1.0.0"}))
            .unwrap()
            .is_empty());
        let err = result_ips(&json!({"ips":[{"address":"not-an-ip/24"}]}))
            .unwrap_err()
            .0;
        assert!(err.contains("not-an-ip/24"), "{err}");
    }

    #[test]
    fn an_error_result_gives_code_msg_details_and_stderr() {
        let stdout = r#"{"cniVersion":"1.0.0","code":7,"msg":"no IP left","details":"range 10.1.0.0/30 full"}"#;
        let err = interpret(
            "host-local",
            CniCommand::Add,
            &out(false, stdout, "log line"),
        )
        .unwrap_err();
        let (plugin, call, message) = NetworkError::into_failed(err);
        assert_eq!(plugin, "cni/host-local");
        assert_eq!(call, "ADD");
        assert!(
            message.contains("error 7: no IP left (range 10.1.0.0/30 full)"),
            "{message}"
        );
        assert!(message.contains("log line"), "{message}");
        // An error object with exit status 0 is still an error.
        let err = interpret("x", CniCommand::Del, &out(true, stdout, "")).unwrap_err();
        assert!(NetworkError::into_failed(err).2.contains("no IP left"));
    }

    #[test]
    fn garbage_is_quoted_bounded_and_names_the_plugin() {
        let garbage = format!("panic: oh no{}", "x".repeat(5000));
        let err = interpret("bridge", CniCommand::Add, &out(true, &garbage, "")).unwrap_err();
        let (plugin, _, message) = NetworkError::into_failed(err);
        assert_eq!(plugin, "cni/bridge");
        assert!(message.contains("not a JSON result"), "{message}");
        assert!(message.contains("panic: oh no"), "{message}");
        assert!(message.len() < 600, "{}", message.len());
        let err = interpret(
            "bridge",
            CniCommand::Add,
            &out(false, "segfault", "core dumped"),
        )
        .unwrap_err();
        let (_, _, message) = NetworkError::into_failed(err);
        assert!(message.contains("exit status: 1"), "{message}");
        assert!(
            message.contains("segfault") && message.contains("core dumped"),
            "{message}"
        );
        // A JSON array is no result either.
        assert!(interpret("b", CniCommand::Add, &out(true, "[1]", "")).is_err());
    }

    #[test]
    fn del_and_check_may_print_nothing_but_add_must_print_a_result() {
        assert_eq!(
            interpret("b", CniCommand::Del, &out(true, "", "")).unwrap(),
            None
        );
        assert_eq!(
            interpret("b", CniCommand::Check, &out(true, "\n", "")).unwrap(),
            None
        );
        let (_, _, m) = NetworkError::into_failed(
            interpret("b", CniCommand::Add, &out(true, "", "")).unwrap_err(),
        );
        assert!(m.contains("no result"), "{m}");
    }
}
