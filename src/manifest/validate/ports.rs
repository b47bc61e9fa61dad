//! Container ports: numbers, protocols, names; host ports unique in the
//! pod; `hostNetwork` pods publish each port at its own number.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::field_error::{is_iana_svc_name, PORT_NAME_MSG};
use super::{Check, FieldError};

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
/// `IsValidPortNum`.
pub(super) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// One container's ports: `containerPort` 1–65535, `hostPort` 0–65535,
/// protocol TCP/UDP/SCTP, names IANA service names unique in the container.
pub(super) fn validate_container_ports(c: &Container, path: &str) -> Check {
    let mut names = HashSet::new();
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let path = format!("{path}.ports[{j}]");
        if !(1..=65535).contains(&port.container_port) {
            let p = format!("{path}.containerPort");
            return Err(FieldError::invalid(p, port.container_port, PORT_RANGE));
        }
        if let Some(host) = port.host_port.filter(|h| !(0..=65535).contains(h)) {
            let msg = "must be between 0 and 65535, inclusive";
            return Err(FieldError::invalid(format!("{path}.hostPort"), host, msg));
        }
        if let Some(proto) = port.protocol.as_deref() {
            if !PROTOCOLS.contains(&proto) {
                let p = format!("{path}.protocol");
                return Err(FieldError::unsupported(p, proto, PROTOCOLS));
            }
        }
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if !is_iana_svc_name(name) {
                let p = format!("{path}.name");
                return Err(FieldError::invalid(p, name, PORT_NAME_MSG));
            }
            if !names.insert(name) {
                return Err(FieldError::duplicate(format!("{path}.name"), name));
            }
        }
    }
    Ok(())
}

/// A probe's or hook's port: a number 1–65535 or a port name.
pub(super) fn validate_port_num_or_name(port: &IntOrString, path: &str) -> Check {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            Err(FieldError::invalid(path, n, PORT_RANGE))
        }
        IntOrString::String(name) if !is_iana_svc_name(name) => {
            Err(FieldError::invalid(path, name, PORT_NAME_MSG))
        }
        _ => Ok(()),
    }
}

/// Host ports unique per `(protocol, hostIP, hostPort)` among the containers
/// (and, apart, among the init containers); with `hostNetwork` a port's
/// `hostPort` is its `containerPort` (0 defaults to it).
pub(super) fn validate_host_ports(spec: &PodSpec) -> Check {
    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let lists = [
        ("containers", &spec.containers[..]),
        ("initContainers", init),
    ];
    for (list, containers) in lists {
        let mut seen = HashSet::new();
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let path = format!("spec.{list}[{i}].ports[{j}]");
                let mut host_port = port.host_port.unwrap_or_default();
                if host_network {
                    if host_port != 0 && host_port != port.container_port {
                        let msg = "must match `hostPort` when `hostNetwork` is true";
                        let p = format!("{path}.containerPort");
                        return Err(FieldError::invalid(p, port.container_port, msg));
                    }
                    host_port = port.container_port;
                }
                if host_port == 0 {
                    continue;
                }
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                let host_ip = port.host_ip.as_deref().unwrap_or_default();
                let key = format!("{protocol}/{host_ip}/{host_port}");
                if !seen.insert(key.clone()) {
                    return Err(FieldError::duplicate(format!("{path}.hostPort"), &key));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn port(container_port: i32, host_port: Option<i32>) -> ContainerPort {
        ContainerPort {
            container_port,
            host_port,
            ..Default::default()
        }
    }

    /// A pod with two containers, `a` and `b`, with these ports.
    fn two(a: Vec<ContainerPort>, b: Vec<ContainerPort>, host_network: bool) -> String {
        let pod = pod_with(|p| {
            let s = spec(p);
            let mut second = s.containers[0].clone();
            second.name = "b".into();
            second.ports = Some(b);
            s.containers[0].ports = Some(a);
            s.containers.push(second);
            s.host_network = host_network.then_some(true);
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn port_names_are_unique_per_container() {
        let named = |n: &str| ContainerPort {
            name: Some(n.into()),
            ..port(80, None)
        };
        let err = two(vec![named("http"), named("http")], vec![], false);
        assert_eq!(
            err,
            "spec.containers[0].ports[1].name: Duplicate value: \"http\""
        );
        assert_eq!(two(vec![named("http")], vec![named("http")], false), "");
    }

    #[test]
    fn host_ports_are_unique_per_protocol_and_host_ip() {
        let err = two(
            vec![port(80, Some(8080))],
            vec![port(81, Some(8080))],
            false,
        );
        assert_eq!(
            err,
            "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""
        );
        let udp = ContainerPort {
            protocol: Some("UDP".into()),
            ..port(81, Some(8080))
        };
        assert_eq!(two(vec![port(80, Some(8080))], vec![udp], false), "");
        let ip = ContainerPort {
            host_ip: Some("127.0.0.1".into()),
            ..port(81, Some(8080))
        };
        assert_eq!(two(vec![port(80, Some(8080))], vec![ip], false), "");
        assert_eq!(two(vec![port(80, None)], vec![port(80, None)], false), "");
    }

    #[test]
    fn host_network_ports_publish_at_their_own_number() {
        let err = two(vec![port(80, Some(8080))], vec![], true);
        assert_eq!(
            err,
            "spec.containers[0].ports[0].containerPort: Invalid value: 80: \
             must match `hostPort` when `hostNetwork` is true"
        );
        assert_eq!(
            two(vec![port(80, Some(80)), port(81, None)], vec![], true),
            ""
        );
        let err = two(vec![port(80, None)], vec![port(80, None)], true);
        assert_eq!(
            err,
            "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//80\""
        );
    }
}
