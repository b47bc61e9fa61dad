//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`, the pure part: the
//! `PodLogOptions` query as the API server parses and validates it, which
//! container (and which instance of it) the request means, as the API server
//! and the kubelet choose it, and the `limitBytes` cut.
//!
//! The wording of every refusal is the API server's or the kubelet's, since
//! `kubectl` prints it after `Error from server (BadRequest):`.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::container::{container_name, NoSuchContainer};
use crate::runtime::LogOptions;

/// Why a log request is refused: a 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadLogRequest(pub String);

impl From<NoSuchContainer> for BadLogRequest {
    fn from(e: NoSuchContainer) -> Self {
        BadLogRequest(e.0)
    }
}

/// Where the log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// `sinceSeconds`: this many seconds before the request.
    Seconds(u64),
    /// `sinceTime`: from this time on.
    Time(DateTime<Utc>),
}

/// The query of a log request (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<Since>,
    pub limit_bytes: Option<u64>,
}

impl LogQuery {
    /// Parses and validates the query. `pretty` and
    /// `insecureSkipTLSVerifyBackend` are accepted and mean nothing here;
    /// other unknown parameters are ignored, as the API server does.
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, BadLogRequest> {
        let get = |k: &str| q.get(k).map(String::as_str);
        let container = get("container")
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let follow = boolean(q, "follow")?;
        let previous = boolean(q, "previous")?;
        let timestamps = boolean(q, "timestamps")?;
        boolean(q, "insecureSkipTLSVerifyBackend")?;
        let tail_lines = integer(q, "tailLines")?
            .map(|n| {
                u64::try_from(n)
                    .map_err(|_| invalid("tailLines", n, "must be greater than or equal to 0"))
            })
            .transpose()?;
        let limit_bytes = integer(q, "limitBytes")?
            .map(|n| positive("limitBytes", n))
            .transpose()?;
        let since_seconds = integer(q, "sinceSeconds")?
            .map(|n| positive("sinceSeconds", n))
            .transpose()?;
        let since_time = get("sinceTime")
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        BadLogRequest(format!(
                            "sinceTime: Invalid value: {t:?}: not an RFC 3339 time: {e}"
                        ))
                    })
            })
            .transpose()?;
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(BadLogRequest(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
                ))
            }
            (Some(s), None) => Some(Since::Seconds(s)),
            (None, Some(t)) => Some(Since::Time(t)),
            (None, None) => None,
        };
        Ok(Self {
            container,
            follow,
            previous,
            timestamps,
            tail_lines,
            since,
            limit_bytes,
        })
    }

    /// What to ask the engine, the request made at `now`.
    pub fn runtime_options(&self, now: DateTime<Utc>) -> LogOptions {
        let since = self.since.map(|s| match s {
            Since::Seconds(n) => now
                .timestamp()
                .saturating_sub(n.min(i64::MAX as u64) as i64),
            Since::Time(t) => t.timestamp(),
        });
        LogOptions {
            follow: self.follow,
            tail: self.tail_lines,
            since,
            timestamps: self.timestamps,
        }
    }
}

fn invalid(param: &str, value: impl std::fmt::Display, why: &str) -> BadLogRequest {
    BadLogRequest(format!("{param}: Invalid value: {value}: {why}"))
}

/// `true`, `false` and the other spellings Go's `strconv.ParseBool` takes;
/// a bare `?follow` (empty) is true, as the API server reads it.
fn boolean(q: &HashMap<String, String>, param: &str) -> Result<bool, BadLogRequest> {
    match q.get(param).map(String::as_str) {
        None => Ok(false),
        Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(BadLogRequest(format!(
            "{param}: Invalid value: {other:?}: must be true or false"
        ))),
    }
}

fn integer(q: &HashMap<String, String>, param: &str) -> Result<Option<i64>, BadLogRequest> {
    q.get(param)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                BadLogRequest(format!("{param}: Invalid value: {v:?}: must be an integer"))
            })
        })
        .transpose()
}

fn positive(param: &str, n: i64) -> Result<u64, BadLogRequest> {
    u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(param, n, "must be greater than 0"))
}

/// The container instance whose log is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The container's name in the pod.
    pub name: String,
    /// The engine's ID of the instance (no `docker://`).
    pub id: String,
}

/// The container instance whose log is asked for (its engine ID), from
/// the pod's status, as the kubelet picks it: with `previous`, the last
/// terminated instance; otherwise the running one, else the terminated one,
/// else the last terminated one; a container still waiting has no log yet.
pub fn choose_container(
    pod: &Pod,
    requested: Option<&str>,
    previous: bool,
) -> Result<Chosen, BadLogRequest> {
    let name = container_name(pod, requested)?;
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref();
    fn find<'a>(list: Option<&'a Vec<ContainerStatus>>, name: &str) -> Option<&'a ContainerStatus> {
        list.and_then(|l| l.iter().find(|s| s.name == name))
    }
    let Some(st) = find(status.and_then(|s| s.container_statuses.as_ref()), &name).or_else(|| {
        find(
            status.and_then(|s| s.init_container_statuses.as_ref()),
            &name,
        )
    }) else {
        return Err(BadLogRequest(format!(
            "container {name:?} in pod {pod_name:?} is not available"
        )));
    };
    let last = st.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_id = last
        .and_then(|t| t.container_id.as_deref())
        .filter(|id| !id.is_empty());
    let state = st.state.as_ref();
    let terminated = || {
        Err(BadLogRequest(format!(
            "container {name:?} in pod {pod_name:?} is terminated"
        )))
    };
    let id = if previous {
        last_id.ok_or_else(|| {
            BadLogRequest(format!(
                "previous terminated container {name:?} in pod {pod_name:?} not found"
            ))
        })?
    } else if state.is_some_and(|s| s.running.is_some()) {
        st.container_id.as_deref().unwrap_or_default()
    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        match t.container_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => match last_id {
                Some(id) => id,
                None => return terminated(),
            },
        }
    } else if last.is_some() {
        match last_id {
            Some(id) => id,
            None => return terminated(),
        }
    } else if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let why = match w.reason.as_deref().unwrap_or_default() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return Err(BadLogRequest(format!(
            "container {name:?} in pod {pod_name:?} is waiting to start: {why}"
        )));
    } else {
        return Err(BadLogRequest(format!(
            "container {name:?} in pod {pod_name:?} is waiting to start - no logs yet"
        )));
    };
    // `docker://<id>`: the engine's ID after the scheme.
    let id = id.split_once("://").map_or(id, |(_, id)| id);
    if id.is_empty() {
        return Err(BadLogRequest(format!(
            "container {name:?} in pod {pod_name:?} is waiting to start - no logs yet"
        )));
    }
    Ok(Chosen {
        id: id.to_string(),
        name,
    })
}

/// `limitBytes`: how many bytes are still to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteBudget(Option<u64>);

impl ByteBudget {
    /// No limit when `None`.
    pub fn new(limit: Option<u64>) -> Self {
        Self(limit)
    }

    /// The part of `chunk` still within the budget; `None` once it is
    /// spent (the stream should end there).
    pub fn take(&mut self, chunk: Bytes) -> Option<Bytes> {
        let Some(left) = self.0 else {
            return Some(chunk);
        };
        if left == 0 {
            return None;
        }
        let n = (chunk.len() as u64).min(left);
        self.0 = Some(left - n);
        Some(chunk.slice(..n as usize))
    }

    /// Whether nothing more may be sent.
    pub fn spent(&self) -> bool {
        self.0 == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<LogQuery, BadLogRequest> {
        LogQuery::parse(&query(pairs))
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        parse(pairs).expect_err("refused").0
    }

    #[test]
    fn no_parameters_means_the_whole_log_of_the_default_container() {
        assert_eq!(parse(&[]).unwrap(), LogQuery::default());
    }

    #[test]
    fn every_parameter_is_read() {
        let q = parse(&[
            ("container", "server"),
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "True"),
            ("tailLines", "2"),
            ("sinceSeconds", "300"),
            ("limitBytes", "10"),
            ("pretty", "whatever"),
            ("insecureSkipTLSVerifyBackend", "true"),
        ])
        .unwrap();
        assert_eq!(
            q,
            LogQuery {
                container: Some("server".into()),
                follow: true,
                previous: true,
                timestamps: true,
                tail_lines: Some(2),
                since: Some(Since::Seconds(300)),
                limit_bytes: Some(10),
            }
        );
        let q = parse(&[("sinceTime", "2024-05-06T07:08:09Z"), ("follow", "false")]).unwrap();
        assert_eq!(
            q.since,
            Some(Since::Time("2024-05-06T07:08:09Z".parse().unwrap()))
        );
        assert!(!q.follow);
        assert_eq!(parse(&[("tailLines", "0")]).unwrap().tail_lines, Some(0));
        assert!(parse(&[("follow", "")]).unwrap().follow, "a bare ?follow");
        assert_eq!(parse(&[("container", "")]).unwrap().container, None);
    }

    #[test]
    fn bad_values_are_refused_naming_the_parameter() {
        for (param, value) in [
            ("follow", "yes"),
            ("previous", "2"),
            ("timestamps", "on"),
            ("insecureSkipTLSVerifyBackend", "x"),
            ("tailLines", "two"),
            ("tailLines", "-1"),
            ("limitBytes", "0"),
            ("limitBytes", "-5"),
            ("limitBytes", "1k"),
            ("sinceSeconds", "0"),
            ("sinceSeconds", "5m"),
            ("sinceTime", "yesterday"),
            ("sinceTime", "2024-05-06 07:08:09"),
        ] {
            let m = refusal(&[(param, value)]);
            assert!(
                m.starts_with(&format!("{param}: Invalid value: ")),
                "{param}={value}: {m}"
            );
        }
        assert_eq!(
            refusal(&[("tailLines", "-1")]),
            "tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            refusal(&[("limitBytes", "0")]),
            "limitBytes: Invalid value: 0: must be greater than 0"
        );
    }

    #[test]
    fn since_seconds_and_since_time_together_are_refused() {
        let m = refusal(&[("sinceSeconds", "5"), ("sinceTime", "2024-05-06T07:08:09Z")]);
        assert_eq!(
            m,
            "at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
    }

    #[test]
    fn the_engine_is_asked_for_what_the_query_says() {
        let now: DateTime<Utc> = "2024-05-06T07:08:09Z".parse().unwrap();
        let q = parse(&[
            ("follow", "true"),
            ("tailLines", "3"),
            ("sinceSeconds", "300"),
            ("timestamps", "true"),
        ])
        .unwrap();
        assert_eq!(
            q.runtime_options(now),
            LogOptions {
                follow: true,
                tail: Some(3),
                since: Some(now.timestamp() - 300),
                timestamps: true,
            }
        );
        let q = parse(&[("sinceTime", "2024-05-06T06:00:00.5+01:00")]).unwrap();
        let opts = q.runtime_options(now);
        let expected: DateTime<Utc> = "2024-05-06T05:00:00Z".parse().unwrap();
        assert_eq!(opts.since, Some(expected.timestamp()));
        assert_eq!(
            (opts.follow, opts.tail, opts.timestamps),
            (false, None, false)
        );
        assert_eq!(
            parse(&[]).unwrap().runtime_options(now),
            LogOptions::default()
        );
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            ..Default::default()
        }
    }

    fn pod(containers: &[&str], init: &[&str], statuses: Vec<ContainerStatus>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers.iter().map(|c| container(c)).collect(),
                init_containers: (!init.is_empty())
                    .then(|| init.iter().map(|c| container(c)).collect()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(statuses),
                ..Default::default()
            }),
        }
    }

    fn running(name: &str, id: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            container_id: Some(format!("docker://{id}")),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(id: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(format!("docker://{id}")),
                exit_code: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_only_container_is_the_default() {
        let p = pod(&["server"], &[], vec![running("server", "abc")]);
        assert_eq!(choose_container(&p, None, false).unwrap().id, "abc");
        assert_eq!(
            choose_container(&p, Some("server"), false).unwrap().id,
            "abc"
        );
    }

    #[test]
    fn with_several_containers_one_must_be_named() {
        let p = pod(&["a", "b"], &[], vec![running("a", "1"), running("b", "2")]);
        assert_eq!(
            choose_container(&p, None, false).unwrap_err().0,
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert_eq!(choose_container(&p, Some("b"), false).unwrap().id, "2");
        let p = pod(&["a", "b"], &["setup", "migrate"], vec![]);
        assert_eq!(
            container_name(&p, None).unwrap_err().0,
            "a container name must be specified for pod web, choose one of: [a b] \
             or one of the init containers: [setup migrate]"
        );
        let p = pod(&[], &[], vec![]);
        assert_eq!(
            container_name(&p, None).unwrap_err().0,
            "a container name must be specified for pod web"
        );
    }

    #[test]
    fn an_unknown_container_is_named_in_the_refusal() {
        let p = pod(&["a", "b"], &[], vec![running("a", "1")]);
        assert_eq!(
            choose_container(&p, Some("nope"), false).unwrap_err().0,
            "container nope is not valid for pod web; choose one of: [a b]"
        );
    }

    #[test]
    fn init_containers_are_valid_choices() {
        let mut p = pod(&["app"], &["setup"], vec![running("app", "1")]);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![ContainerStatus {
            name: "setup".into(),
            container_id: Some("docker://init1".into()),
            state: Some(terminated("init1")),
            ..Default::default()
        }]);
        assert_eq!(
            choose_container(&p, Some("setup"), false).unwrap().id,
            "init1"
        );
        // Only one app container: still the default, init containers aside.
        assert_eq!(choose_container(&p, None, false).unwrap().id, "1");
    }

    #[test]
    fn previous_is_the_last_terminated_instance() {
        let mut st = running("server", "new");
        st.last_state = Some(terminated("old"));
        let p = pod(&["server"], &[], vec![st]);
        assert_eq!(choose_container(&p, None, true).unwrap().id, "old");
        assert_eq!(choose_container(&p, None, false).unwrap().id, "new");
        let p = pod(&["server"], &[], vec![running("server", "new")]);
        assert_eq!(
            choose_container(&p, None, true).unwrap_err().0,
            "previous terminated container \"server\" in pod \"web\" not found"
        );
    }

    #[test]
    fn a_crashed_container_waiting_to_restart_shows_its_last_run() {
        let st = ContainerStatus {
            name: "server".into(),
            container_id: Some("docker://dead".into()),
            state: Some(waiting("CrashLoopBackOff")),
            last_state: Some(terminated("dead")),
            ..Default::default()
        };
        let p = pod(&["server"], &[], vec![st]);
        assert_eq!(choose_container(&p, None, false).unwrap().id, "dead");
        assert_eq!(choose_container(&p, None, true).unwrap().id, "dead");
    }

    #[test]
    fn a_terminated_container_shows_its_log() {
        let st = ContainerStatus {
            name: "job".into(),
            container_id: Some("docker://done".into()),
            state: Some(terminated("done")),
            ..Default::default()
        };
        let p = pod(&["job"], &[], vec![st]);
        assert_eq!(choose_container(&p, None, false).unwrap().id, "done");
    }

    #[test]
    fn a_container_not_yet_started_has_no_log() {
        let st = ContainerStatus {
            name: "server".into(),
            state: Some(waiting("ContainerCreating")),
            ..Default::default()
        };
        let p = pod(&["server"], &[], vec![st.clone()]);
        assert_eq!(
            choose_container(&p, None, false).unwrap_err().0,
            "container \"server\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        let mut pulling = st;
        pulling.state = Some(waiting("ImagePullBackOff"));
        let p = pod(&["server"], &[], vec![pulling]);
        assert_eq!(
            choose_container(&p, None, false).unwrap_err().0,
            "container \"server\" in pod \"web\" is waiting to start: trying and failing to pull image"
        );
        let p = pod(&["server"], &[], vec![]);
        assert_eq!(
            choose_container(&p, None, false).unwrap_err().0,
            "container \"server\" in pod \"web\" is not available"
        );
    }

    #[test]
    fn the_byte_budget_cuts_the_stream() {
        let mut b = ByteBudget::new(Some(5));
        assert_eq!(
            b.take(Bytes::from_static(b"abc")),
            Some(Bytes::from_static(b"abc"))
        );
        assert!(!b.spent());
        assert_eq!(
            b.take(Bytes::from_static(b"defg")),
            Some(Bytes::from_static(b"de"))
        );
        assert!(b.spent());
        assert_eq!(b.take(Bytes::from_static(b"h")), None);
        let mut unlimited = ByteBudget::new(None);
        assert_eq!(
            unlimited.take(Bytes::from_static(b"anything")),
            Some(Bytes::from_static(b"anything"))
        );
        assert!(!unlimited.spent());
    }
}
