//! Probes and lifecycle hooks: exactly one handler, each handler's fields,
//! the probe's numbers (0 stands for the API server's default: 1 second
//! timeout, 10 second period, thresholds 1 and 3).

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};

use super::containers::Ctx;
use super::ports::{validate_port_num_or_name, PORT_RANGE};
use super::{nonnegative, Check, FieldError};

const HANDLER_COUNT: &str = "may not specify more than 1 handler type";
const HANDLER_MISSING: &str = "must specify a handler type";
const HEADER_NAME_MSG: &str = "a valid HTTP header must consist of alphanumeric characters \
    or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";

/// The handlers of a probe or a hook, in Kubernetes' order.
struct Handlers<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<i64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Liveness,
    Readiness,
    Startup,
}

/// The three probes and the two hooks of a container.
pub(super) fn validate_probes(c: &Container, ctx: &Ctx<'_>) -> Check {
    let probes = [
        ("livenessProbe", &c.liveness_probe, Kind::Liveness),
        ("readinessProbe", &c.readiness_probe, Kind::Readiness),
        ("startupProbe", &c.startup_probe, Kind::Startup),
    ];
    for (field, probe, kind) in probes {
        if let Some(probe) = probe {
            validate_probe(probe, kind, &format!("{}.{field}", ctx.path))?;
        }
    }
    let lifecycle = c.lifecycle.as_ref();
    let hooks = [
        ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
        ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
    ];
    for (field, hook) in hooks {
        if let Some(hook) = hook {
            let path = format!("{}.lifecycle.{field}", ctx.path);
            validate_hook(hook, ctx.grace, &path)?;
        }
    }
    Ok(())
}

fn validate_probe(probe: &Probe, kind: Kind, path: &str) -> Check {
    let handlers = Handlers {
        exec: probe.exec.as_ref(),
        http_get: probe.http_get.as_ref(),
        tcp_socket: probe.tcp_socket.as_ref(),
        grpc: probe.grpc.as_ref(),
        sleep: None,
    };
    validate_handlers(&handlers, None, path)?;
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in numbers {
        nonnegative(value.map(i64::from), || format!("{path}.{field}"))?;
    }
    if let Some(grace) = probe.termination_grace_period_seconds {
        let p = format!("{path}.terminationGracePeriodSeconds");
        if kind == Kind::Readiness {
            let msg = "must not be set for readinessProbes";
            return Err(FieldError::invalid(p, grace, msg));
        }
        if grace <= 0 {
            return Err(FieldError::invalid(p, grace, "must be greater than 0"));
        }
    }
    // 0 (or unset) is defaulted to 1.
    let success = probe.success_threshold.filter(|s| *s != 0).unwrap_or(1);
    if kind != Kind::Readiness && success != 1 {
        let p = format!("{path}.successThreshold");
        return Err(FieldError::invalid(p, success, "must be 1"));
    }
    Ok(())
}

fn validate_hook(hook: &LifecycleHandler, grace: Option<i64>, path: &str) -> Check {
    let handlers = Handlers {
        exec: hook.exec.as_ref(),
        http_get: hook.http_get.as_ref(),
        tcp_socket: hook.tcp_socket.as_ref(),
        grpc: None,
        sleep: hook.sleep.as_ref().map(|s| s.seconds),
    };
    validate_handlers(&handlers, grace, path)
}

/// Exactly one handler, and its fields.
fn validate_handlers(h: &Handlers<'_>, grace: Option<i64>, path: &str) -> Check {
    let set = [
        ("exec", h.exec.is_some()),
        ("httpGet", h.http_get.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
        ("grpc", h.grpc.is_some()),
        ("sleep", h.sleep.is_some()),
    ];
    let mut set = set.iter().filter(|(_, set)| *set);
    if set.next().is_none() {
        return Err(FieldError::required_because(path, HANDLER_MISSING));
    }
    if let Some((second, _)) = set.next() {
        return Err(FieldError::forbidden(
            format!("{path}.{second}"),
            HANDLER_COUNT,
        ));
    }
    if let Some(exec) = h.exec {
        if exec.command.as_ref().is_none_or(Vec::is_empty) {
            return Err(FieldError::required(format!("{path}.exec.command")));
        }
    }
    if let Some(http) = h.http_get {
        let path = format!("{path}.httpGet");
        validate_port_num_or_name(&http.port, &format!("{path}.port"))?;
        if let Some(scheme) = http.scheme.as_deref() {
            if !matches!(scheme, "HTTP" | "HTTPS") {
                let p = format!("{path}.scheme");
                return Err(FieldError::unsupported(p, scheme, &["HTTP", "HTTPS"]));
            }
        }
        for (i, header) in http.http_headers.iter().flatten().enumerate() {
            let name = &header.name;
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                let p = format!("{path}.httpHeaders[{i}].name");
                return Err(FieldError::invalid(p, name, HEADER_NAME_MSG));
            }
        }
    }
    if let Some(tcp) = h.tcp_socket {
        validate_port_num_or_name(&tcp.port, &format!("{path}.tcpSocket.port"))?;
    }
    if let Some(grpc) = h.grpc {
        if !(1..=65535).contains(&grpc.port) {
            let p = format!("{path}.grpc.port");
            return Err(FieldError::invalid(p, grpc.port, PORT_RANGE));
        }
    }
    if let (Some(seconds), Some(grace)) = (h.sleep, grace) {
        if seconds <= 0 || seconds > grace {
            let msg = format!(
                "must be greater than 0 and less than terminationGracePeriodSeconds ({grace})"
            );
            return Err(FieldError::invalid(format!("{path}.sleep"), seconds, &msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Lifecycle, LifecycleHandler, Probe,
        SleepAction, TCPSocketAction,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn exec() -> Option<ExecAction> {
        Some(ExecAction {
            command: Some(vec!["true".into()]),
        })
    }

    fn tcp(port: IntOrString) -> Option<TCPSocketAction> {
        Some(TCPSocketAction { host: None, port })
    }

    /// The error of a pod whose app container has `probe` as its liveness
    /// (or, with `readiness`, readiness) probe.
    fn probe_err(probe: Probe, readiness: bool) -> String {
        let pod = pod_with(|p| {
            let c = &mut spec(p).containers[0];
            if readiness {
                c.readiness_probe = Some(probe);
            } else {
                c.liveness_probe = Some(probe);
            }
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn live(probe: Probe) -> String {
        probe_err(probe, false)
    }

    fn exec_probe() -> Probe {
        Probe {
            exec: exec(),
            ..Default::default()
        }
    }

    fn hook_err(pre_stop: LifecycleHandler) -> String {
        let pod = pod_with(|p| {
            spec(p).containers[0].lifecycle = Some(Lifecycle {
                pre_stop: Some(pre_stop),
                ..Default::default()
            })
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    const LIVE: &str = "spec.containers[0].livenessProbe";

    #[test]
    fn a_probe_has_exactly_one_handler() {
        let two = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                ..Default::default()
            }),
            ..exec_probe()
        };
        assert_eq!(
            live(two),
            format!("{LIVE}.httpGet: Forbidden: may not specify more than 1 handler type")
        );
        assert_eq!(
            live(Probe::default()),
            format!("{LIVE}: Required value: must specify a handler type")
        );
        assert_eq!(live(exec_probe()), "");
    }

    #[test]
    fn probe_numbers_are_not_negative() {
        for (field, probe) in [
            (
                "initialDelaySeconds",
                Probe {
                    initial_delay_seconds: Some(-1),
                    ..exec_probe()
                },
            ),
            (
                "timeoutSeconds",
                Probe {
                    timeout_seconds: Some(-1),
                    ..exec_probe()
                },
            ),
            (
                "periodSeconds",
                Probe {
                    period_seconds: Some(-1),
                    ..exec_probe()
                },
            ),
            (
                "successThreshold",
                Probe {
                    success_threshold: Some(-1),
                    ..exec_probe()
                },
            ),
            (
                "failureThreshold",
                Probe {
                    failure_threshold: Some(-1),
                    ..exec_probe()
                },
            ),
        ] {
            assert_eq!(
                live(probe),
                format!("{LIVE}.{field}: Invalid value: -1: must be greater than or equal to 0")
            );
        }
    }

    #[test]
    fn zero_probe_numbers_take_the_defaults() {
        let zeros = Probe {
            initial_delay_seconds: Some(0),
            timeout_seconds: Some(0),
            period_seconds: Some(0),
            success_threshold: Some(0),
            failure_threshold: Some(0),
            ..exec_probe()
        };
        assert_eq!(live(zeros), "");
    }

    #[test]
    fn liveness_and_startup_success_threshold_is_1() {
        let probe = Probe {
            success_threshold: Some(2),
            ..exec_probe()
        };
        assert_eq!(
            live(probe.clone()),
            format!("{LIVE}.successThreshold: Invalid value: 2: must be 1")
        );
        assert_eq!(probe_err(probe, true), "", "readiness may need 2 successes");
    }

    #[test]
    fn probe_termination_grace_period_is_positive_and_not_for_readiness() {
        let probe = Probe {
            termination_grace_period_seconds: Some(0),
            ..exec_probe()
        };
        assert_eq!(
            live(probe.clone()),
            format!(
                "{LIVE}.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"
            )
        );
        let probe = Probe {
            termination_grace_period_seconds: Some(5),
            ..exec_probe()
        };
        assert_eq!(live(probe.clone()), "");
        let err = probe_err(probe, true);
        assert!(
            err.ends_with("must not be set for readinessProbes"),
            "{err}"
        );
    }

    #[test]
    fn handler_fields() {
        let no_command = Probe {
            exec: Some(ExecAction { command: None }),
            ..Default::default()
        };
        assert_eq!(
            live(no_command),
            format!("{LIVE}.exec.command: Required value")
        );
        let http = |port, scheme: Option<&str>, header: &str| Probe {
            http_get: Some(HTTPGetAction {
                port,
                scheme: scheme.map(Into::into),
                http_headers: Some(vec![HTTPHeader {
                    name: header.into(),
                    value: "v".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = live(http(IntOrString::Int(0), None, "X-A"));
        assert_eq!(
            err,
            format!(
                "{LIVE}.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"
            )
        );
        let err = live(http(IntOrString::String("HTTP".into()), None, "X-A"));
        assert!(
            err.starts_with(&format!("{LIVE}.httpGet.port: Invalid value: \"HTTP\"")),
            "{err}"
        );
        let err = live(http(IntOrString::Int(80), Some("FTP"), "X-A"));
        assert!(
            err.starts_with(&format!(
                "{LIVE}.httpGet.scheme: Unsupported value: \"FTP\""
            )),
            "{err}"
        );
        let err = live(http(IntOrString::Int(80), Some("HTTPS"), "X A"));
        assert!(
            err.starts_with(&format!(
                "{LIVE}.httpGet.httpHeaders[0].name: Invalid value: \"X A\": a valid HTTP header"
            )),
            "{err}"
        );
        assert_eq!(
            live(http(
                IntOrString::String("web".into()),
                Some("HTTPS"),
                "X-A"
            )),
            ""
        );
        let err = live(Probe {
            tcp_socket: tcp(IntOrString::Int(70000)),
            ..Default::default()
        });
        assert!(
            err.starts_with(&format!("{LIVE}.tcpSocket.port: Invalid value: 70000")),
            "{err}"
        );
        let err = live(Probe {
            grpc: Some(GRPCAction {
                port: 0,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(
            err.starts_with(&format!("{LIVE}.grpc.port: Invalid value: 0")),
            "{err}"
        );
    }

    #[test]
    fn a_hook_has_exactly_one_action() {
        let two = LifecycleHandler {
            exec: exec(),
            sleep: Some(SleepAction { seconds: 1 }),
            ..Default::default()
        };
        assert_eq!(
            hook_err(two),
            "spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type"
        );
        assert_eq!(
            hook_err(LifecycleHandler::default()),
            "spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"
        );
    }

    #[test]
    fn a_sleep_hook_lasts_1_to_grace_seconds() {
        let sleep = |seconds| LifecycleHandler {
            sleep: Some(SleepAction { seconds }),
            ..Default::default()
        };
        assert_eq!(hook_err(sleep(30)), "");
        assert_eq!(
            hook_err(sleep(31)),
            "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 31: \
             must be greater than 0 and less than terminationGracePeriodSeconds (30)"
        );
        assert!(hook_err(sleep(0)).contains("Invalid value: 0"));
    }
}
