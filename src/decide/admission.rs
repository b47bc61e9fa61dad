//! Node admission as the kubelet does it (its `canAdmitPod`): a new or
//! edited pod is judged against the node **and the pods already admitted**,
//! with the scheduler's general predicates, in the kubelet's order:
//!
//! 1. resources fit: the pod's effective requests against the node's
//!    allocatable less what the admitted pods request (`OutOfcpu`,
//!    `OutOfmemory`, "Node didn't have enough resource: cpu, requested: 1500,
//!    used: 1500, capacity: 2000");
//! 2. `NodeAffinity`: `nodeSelector` and the required node affinity against
//!    the node's labels;
//! 3. `NodePorts`: no `hostPort` another admitted pod holds;
//!
//! then the checks of the pod alone
//! ([`admit_pod_alone`](crate::spec::containers::admit_pod_alone)). The first
//! failure is the reason, as the kubelet reports only the first.
//!
//! The [`Ledger`] remembers what each admitted pod claims. A pod that
//! finished (`Succeeded`/`Failed`) or left the desired set no longer counts.
//! An admitted pod is never judged again unless its spec changes; an edited
//! pod is judged again against the others (not itself).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use crate::decide::status::Refusal;
use crate::model::RefusalReason;
use crate::spec::containers::{self, NodeRules};
use crate::spec::resources::{self, PodRequests};

/// The well-known labels the node sets itself.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";

/// The node's labels: `kubernetes.io/hostname` (the node name),
/// `kubernetes.io/os` and `kubernetes.io/arch` (Go's spelling: `amd64`,
/// `arm64`), then `--node-labels`, which win over them as the kubelet's do.
pub fn node_labels(node_name: &str, given: &[(String, String)]) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let mut labels = BTreeMap::from([
        (LABEL_HOSTNAME.to_string(), node_name.to_lowercase()),
        (LABEL_OS.to_string(), std::env::consts::OS.to_string()),
        (LABEL_ARCH.to_string(), arch.to_string()),
    ]);
    labels.extend(given.iter().cloned());
    labels
}

/// One `hostPort` a pod holds: `ip` is `0.0.0.0` when it listens on every
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// The scheduler's `HostPortInfo` conflict: same protocol and port, and
    /// the same address or either one on every address.
    fn clashes(&self, other: &HostPort) -> bool {
        const ANY: &str = "0.0.0.0";
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip || self.ip == ANY || other.ip == ANY)
    }
}

/// What an admitted pod takes from the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
}

/// The host ports of a pod: every container's (init containers included)
/// `hostPort`, and with `hostNetwork` its `containerPort`.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network.unwrap_or(false);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p
                .host_port
                .filter(|h| *h > 0)
                .or_else(|| host_network.then_some(p.container_port))?;
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// Whether the pod's `nodeSelector` and required node affinity
/// (`requiredDuringSchedulingIgnoredDuringExecution`) match the node: every
/// selector label equal, and at least one term whose expressions all match
/// (`matchFields` on `metadata.name` too). A term with nothing in it matches
/// nothing, as in Kubernetes.
pub fn matches_node(pod: &Pod, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    let affinity_ok = match terms {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, labels, node_name)),
    };
    selector_ok && affinity_ok
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = BTreeMap::from([("metadata.name".to_string(), node.to_string())]);
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| requirement_matches(r, &name))
}

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let compare = |ord: std::cmp::Ordering| {
        let (Some(have), [want]) = (value.and_then(|v| number(v)), values) else {
            return false;
        };
        number(want).is_some_and(|want| have.cmp(&want) == ord)
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// Judges `pod` against the node and what the admitted `others` claim: the
/// node-wide predicates (resources, node affinity, host ports), in the
/// kubelet's order, then the checks of the pod alone. Its claim when
/// admitted.
pub fn judge<'a>(
    pod: &Pod,
    uid: &str,
    rules: &NodeRules,
    others: impl IntoIterator<Item = &'a Claim>,
) -> Result<Claim, Refusal> {
    let requests = resources::pod_requests(pod).map_err(|e| Refusal {
        reason: RefusalReason::UnexpectedAdmissionError,
        message: e.to_string(),
    })?;
    let mut used = PodRequests::default();
    let mut taken: Vec<&HostPort> = Vec::new();
    for c in others {
        used.cpu_millis = used.cpu_millis.saturating_add(c.requests.cpu_millis);
        used.memory_bytes = used.memory_bytes.saturating_add(c.requests.memory_bytes);
        taken.extend(&c.host_ports);
    }
    resources::fit(requests, used, &rules.capacity).map_err(|r| Refusal {
        reason: r.reason,
        message: r.message,
    })?;
    if !matches_node(pod, &rules.labels, &rules.node_name) {
        return Err(Refusal {
            reason: RefusalReason::NodeAffinity,
            message:
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
                    .into(),
        });
    }
    let ports = host_ports(pod);
    if let Some(p) = ports.iter().find(|p| taken.iter().any(|t| t.clashes(p))) {
        return Err(Refusal {
            reason: RefusalReason::NodePorts,
            message: format!(
                "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports ({}/{} on {} is held by another pod)",
                p.port, p.protocol, p.ip
            ),
        });
    }
    containers::admit_pod_alone(pod, uid, rules)?;
    Ok(Claim {
        requests,
        host_ports: ports,
    })
}

/// What the Supervisor tells a pod's worker about admission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody judged the pod against the others (a worker on its own): the
    /// worker judges it alone ([`containers::admit_pod`]).
    #[default]
    Unjudged,
    /// Admitted against the others: the worker checks only what depends on
    /// the pod alone.
    Admitted,
    /// Refused: nothing is created, what runs of an earlier spec is removed,
    /// and the pod is `Failed` with the reason.
    Refused(Refusal),
}

/// The admitted pods and what they claim, and the refused ones, by UID.
#[derive(Debug, Default)]
pub struct Ledger {
    admitted: HashMap<String, Claim>,
    /// Admitted pods that finished: they claim nothing any more.
    finished: HashSet<String>,
    refused: HashMap<String, Refusal>,
}

impl Ledger {
    /// Judges a new or edited pod against the admitted pods other than
    /// itself and remembers the verdict. With `keep` (a pod whose containers
    /// already ran when podvisor started), the node-wide predicates are not
    /// applied: an admitted pod is never removed for not fitting; its claim
    /// still counts. A refusal is named after `source` and the pod
    /// ([`containers::named_refusal`]).
    pub fn judge(
        &mut self,
        uid: &str,
        pod: &Pod,
        rules: &NodeRules,
        keep: bool,
        source: &str,
    ) -> Verdict {
        self.admitted.remove(uid);
        self.finished.remove(uid);
        self.refused.remove(uid);
        let judged = if keep {
            containers::admit_pod_alone(pod, uid, rules).map(|_| Claim {
                requests: resources::pod_requests(pod).unwrap_or_default(),
                host_ports: host_ports(pod),
            })
        } else {
            let others = self
                .admitted
                .iter()
                .filter(|(u, _)| !self.finished.contains(*u))
                .map(|(_, c)| c);
            judge(pod, uid, rules, others)
        };
        match judged {
            Ok(claim) => {
                self.admitted.insert(uid.to_string(), claim);
                Verdict::Admitted
            }
            Err(r) => {
                let r = containers::named_refusal(r, source, pod);
                self.refused.insert(uid.to_string(), r.clone());
                Verdict::Refused(r)
            }
        }
    }

    /// The verdict last given for `uid` (`Unjudged` when none).
    pub fn verdict(&self, uid: &str) -> Verdict {
        match (self.refused.get(uid), self.admitted.contains_key(uid)) {
            (Some(r), _) => Verdict::Refused(r.clone()),
            (None, true) => Verdict::Admitted,
            (None, false) => Verdict::Unjudged,
        }
    }

    /// Whether `uid` was refused.
    pub fn is_refused(&self, uid: &str) -> bool {
        self.refused.contains_key(uid)
    }

    /// The pod finished (`Succeeded` or `Failed`): its resources and ports
    /// are free for others.
    pub fn finished(&mut self, uid: &str) {
        if self.admitted.contains_key(uid) {
            self.finished.insert(uid.to_string());
        }
    }

    /// The pod left the desired set.
    pub fn forget(&mut self, uid: &str) {
        self.admitted.remove(uid);
        self.finished.remove(uid);
        self.refused.remove(uid);
    }

    /// What the admitted pods that still run request in all.
    pub fn used(&self) -> PodRequests {
        let mut used = PodRequests::default();
        for (_, c) in self
            .admitted
            .iter()
            .filter(|(u, _)| !self.finished.contains(*u))
        {
            used.cpu_millis += c.requests.cpu_millis;
            used.memory_bytes += c.requests.memory_bytes;
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> NodeRules {
        NodeRules {
            labels: node_labels("N1", &[("disk".into(), "ssd".into())]),
            ..NodeRules::for_unit_tests()
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn cpu(millis: &str) -> Pod {
        pod(
            serde_json::json!({"containers": [{"name": "app", "image": "i",
            "resources": {"requests": {"cpu": millis}}}]}),
        )
    }

    fn host_port(port: i32, ip: Option<&str>) -> Pod {
        pod(
            serde_json::json!({"containers": [{"name": "app", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": port, "hostIP": ip}]}]}),
        )
    }

    #[test]
    fn the_node_labels_itself_and_given_labels_win() {
        let l = node_labels("Web-1", &[("zone".into(), "a".into())]);
        assert_eq!(l[LABEL_HOSTNAME], "web-1");
        assert_eq!(l[LABEL_OS], "linux");
        assert!(!l[LABEL_ARCH].is_empty());
        assert_ne!(l[LABEL_ARCH], "x86_64");
        assert_eq!(l["zone"], "a");
        let l = node_labels("n", &[(LABEL_HOSTNAME.into(), "other".into())]);
        assert_eq!(l[LABEL_HOSTNAME], "other");
    }

    #[test]
    fn two_pods_that_each_fit_do_not_fit_together() {
        let mut l = Ledger::default();
        assert_eq!(
            l.judge("a", &cpu("1500m"), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
        let Verdict::Refused(r) = l.judge("b", &cpu("1500m"), &rules(), false, "f.yaml") else {
            panic!("the second pod was admitted");
        };
        assert_eq!(r.reason, RefusalReason::OutOfcpu);
        assert_eq!(
            r.message,
            "f.yaml: pod default/p: Node didn't have enough resource: cpu, requested: 1500, used: 1500, capacity: 2000"
        );
        assert_eq!(l.used().cpu_millis, 1500);
        assert_eq!(
            l.judge("c", &cpu("500m"), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
    }

    #[test]
    fn a_finished_or_gone_pod_frees_what_it_claimed() {
        let mut l = Ledger::default();
        l.judge("a", &cpu("1500m"), &rules(), false, "f.yaml");
        l.finished("a");
        assert_eq!(
            l.judge("b", &cpu("1500m"), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
        l.forget("b");
        assert_eq!(l.used(), PodRequests::default());
        assert_eq!(
            l.judge("c", &cpu("2"), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
    }

    #[test]
    fn an_edited_pod_is_judged_against_the_others_not_itself() {
        let mut l = Ledger::default();
        l.judge("a", &cpu("1"), &rules(), false, "f.yaml");
        l.judge("b", &cpu("500m"), &rules(), false, "f.yaml");
        // a grows from 1 to 1500m: 1500 + 500 fits in 2000.
        assert_eq!(
            l.judge("a", &cpu("1500m"), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
        // a grows past what b leaves: refused, and then claims nothing.
        assert!(matches!(
            l.judge("a", &cpu("1600m"), &rules(), false, "f.yaml"),
            Verdict::Refused(_)
        ));
        assert_eq!(l.used().cpu_millis, 500);
        assert!(l.is_refused("a"));
    }

    #[test]
    fn a_pod_kept_from_before_a_restart_is_admitted_and_counted() {
        let mut l = Ledger::default();
        assert_eq!(
            l.judge("a", &cpu("3"), &rules(), true, "f.yaml"),
            Verdict::Admitted
        );
        assert_eq!(l.used().cpu_millis, 3000);
        assert!(matches!(
            l.judge("b", &cpu("100m"), &rules(), false, "f.yaml"),
            Verdict::Refused(Refusal {
                reason: RefusalReason::OutOfcpu,
                ..
            })
        ));
    }

    #[test]
    fn a_pod_without_requests_always_fits_resources() {
        let mut l = Ledger::default();
        l.judge("a", &cpu("2"), &rules(), false, "f.yaml");
        let empty = pod(serde_json::json!({"containers": [{"name": "app", "image": "i"}]}));
        assert_eq!(
            l.judge("b", &empty, &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
    }

    #[test]
    fn pod_level_requests_replace_the_containers_and_overhead_adds() {
        let p = pod(serde_json::json!({
            "resources": {"requests": {"cpu": "1500m"}},
            "overhead": {"cpu": "100m", "memory": "10Mi"},
            "containers": [{"name": "app", "image": "i",
                "resources": {"requests": {"cpu": "100m", "memory": "20Mi"}}}]}));
        let r = resources::pod_requests(&p).unwrap();
        assert_eq!(r.cpu_millis, 1600);
        assert_eq!(r.memory_bytes, 30 << 20);
        let mut l = Ledger::default();
        l.judge("a", &p, &rules(), false, "f.yaml");
        assert!(matches!(
            l.judge("b", &cpu("500m"), &rules(), false, "f.yaml"),
            Verdict::Refused(Refusal {
                reason: RefusalReason::OutOfcpu,
                ..
            })
        ));
    }

    #[test]
    fn pod_level_limits_are_admitted_and_bad_ones_refused_naming_the_field() {
        // A pod cgroup holds them (the worker refuses them only when the
        // engine's cgroup driver cannot).
        let p = pod(serde_json::json!({
            "resources": {"limits": {"memory": "64Mi"}},
            "containers": [{"name": "app", "image": "i"}]}));
        let v = Ledger::default().judge("a", &p, &rules(), false, "f.yaml");
        assert!(matches!(v, Verdict::Admitted), "{v:?}");
        let bad = pod(serde_json::json!({
            "resources": {"limits": {"memory": "lots"}},
            "containers": [{"name": "app", "image": "i"}]}));
        let Verdict::Refused(r) = Ledger::default().judge("b", &bad, &rules(), false, "f.yaml")
        else {
            panic!("admitted");
        };
        assert_eq!(r.reason, RefusalReason::UnexpectedAdmissionError);
        assert!(
            r.message
                .starts_with("f.yaml: pod default/p: spec.resources.limits.memory:"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_host_port_held_by_another_pod_is_refused() {
        let mut l = Ledger::default();
        assert_eq!(
            l.judge("a", &host_port(8080, None), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
        let Verdict::Refused(r) = l.judge(
            "b",
            &host_port(8080, Some("127.0.0.1")),
            &rules(),
            false,
            "f.yaml",
        ) else {
            panic!("admitted");
        };
        assert_eq!(r.reason, RefusalReason::NodePorts);
        assert!(
            r.message.starts_with(
                "f.yaml: pod default/p: Predicate NodePorts failed: node(s) didn't have free ports"
            ),
            "{}",
            r.message
        );
        assert_eq!(
            l.judge("c", &host_port(8081, None), &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
        // Two distinct addresses do not clash; UDP and TCP do not either.
        let mut l = Ledger::default();
        l.judge(
            "a",
            &host_port(9000, Some("127.0.0.1")),
            &rules(),
            false,
            "f.yaml",
        );
        assert_eq!(
            l.judge(
                "b",
                &host_port(9000, Some("127.0.0.2")),
                &rules(),
                false,
                "f.yaml"
            ),
            Verdict::Admitted
        );
        let udp = pod(
            serde_json::json!({"containers": [{"name": "app", "image": "i",
            "ports": [{"containerPort": 9000, "hostPort": 9000, "protocol": "UDP"}]}]}),
        );
        assert_eq!(
            l.judge("c", &udp, &rules(), false, "f.yaml"),
            Verdict::Admitted
        );
    }

    #[test]
    fn host_network_ports_are_host_ports() {
        let p = pod(
            serde_json::json!({"hostNetwork": true, "containers": [{"name": "app",
            "image": "i", "ports": [{"containerPort": 8080}]}]}),
        );
        assert_eq!(host_ports(&p)[0].port, 8080);
        let mut l = Ledger::default();
        l.judge("a", &p, &rules(), false, "f.yaml");
        assert!(matches!(
            l.judge("b", &host_port(8080, None), &rules(), false, "f.yaml"),
            Verdict::Refused(Refusal {
                reason: RefusalReason::NodePorts,
                ..
            })
        ));
    }

    #[test]
    fn node_selector_must_match_the_node_labels() {
        let on = |sel: serde_json::Value| {
            let p = pod(serde_json::json!({"nodeSelector": sel,
                "containers": [{"name": "app", "image": "i"}]}));
            Ledger::default().judge("a", &p, &rules(), false, "f.yaml")
        };
        assert_eq!(on(serde_json::json!({"disk": "ssd"})), Verdict::Admitted);
        assert_eq!(
            on(serde_json::json!({"kubernetes.io/hostname": "n1"})),
            Verdict::Admitted
        );
        let Verdict::Refused(r) = on(serde_json::json!({"disk": "hdd"})) else {
            panic!("admitted");
        };
        assert_eq!(r.reason, RefusalReason::NodeAffinity);
        assert_eq!(
            r.message,
            "f.yaml: pod default/p: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        );
    }

    #[test]
    fn required_node_affinity_terms_are_ored_expressions_anded() {
        let labels = rules().labels;
        let with = |terms: serde_json::Value| {
            pod(serde_json::json!({"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}},
                "containers": [{"name": "app", "image": "i"}]}))
        };
        let m = |terms| matches_node(&with(terms), &labels, "n1");
        let expr = |key: &str, op: &str, values: &[&str]| serde_json::json!({"key": key, "operator": op, "values": values});
        assert!(m(
            serde_json::json!([{"matchExpressions": [expr("disk", "In", &["ssd", "nvme"])]}])
        ));
        assert!(!m(
            serde_json::json!([{"matchExpressions": [expr("disk", "NotIn", &["ssd"])]}])
        ));
        assert!(m(
            serde_json::json!([{"matchExpressions": [expr("gpu", "DoesNotExist", &[])]}])
        ));
        assert!(!m(serde_json::json!([{"matchExpressions": [
            expr("disk", "Exists", &[]), expr("gpu", "Exists", &[])]}])));
        assert!(m(serde_json::json!([
            {"matchExpressions": [expr("gpu", "Exists", &[])]},
            {"matchFields": [expr("metadata.name", "In", &["n1"])]}])));
        assert!(!m(serde_json::json!([{}])), "an empty term matches nothing");
        let mut numbered = labels.clone();
        numbered.insert("cores".into(), "8".into());
        let p = with(serde_json::json!([{"matchExpressions": [expr("cores", "Gt", &["4"])]}]));
        assert!(matches_node(&p, &numbered, "n1"));
        let p = with(serde_json::json!([{"matchExpressions": [expr("cores", "Lt", &["4"])]}]));
        assert!(!matches_node(&p, &numbered, "n1"));
    }

    #[test]
    fn resources_are_checked_before_affinity_and_ports() {
        let mut l = Ledger::default();
        l.judge("a", &host_port(80, None), &rules(), false, "f.yaml");
        let p = pod(serde_json::json!({"nodeSelector": {"disk": "hdd"},
            "containers": [{"name": "app", "image": "i",
                "resources": {"requests": {"cpu": "3"}},
                "ports": [{"containerPort": 80, "hostPort": 80}]}]}));
        assert!(matches!(
            l.judge("b", &p, &rules(), false, "f.yaml"),
            Verdict::Refused(Refusal {
                reason: RefusalReason::OutOfcpu,
                ..
            })
        ));
    }
}
