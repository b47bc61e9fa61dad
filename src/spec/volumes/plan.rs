//! [`plan_volumes`]: a pod's volumes, validated as the API server would and
//! placed on the host.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::{check_absolute, PodVolumes, VolumeSource, HOST_PATH_TYPES};
use crate::manifest::{is_dns1123_label, FieldError};

/// Why a pod's volumes are refused: a volume type podvisor does not run, or
/// an invalid volume (the message is the field error either way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeRefusal {
    #[error(transparent)]
    Unsupported(FieldError),
    #[error(transparent)]
    Invalid(#[from] FieldError),
}
use crate::spec::resources;

/// The pod's memory limit as the kubelet computes it for its cgroup: the
/// larger of the app containers' sum and the largest init container's, when
/// every container has a non-zero limit; `None` otherwise.
fn pod_memory_limit(pod: &Pod) -> Result<Option<i64>, FieldError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let mut sum: i64 = 0;
    for (i, c) in spec.containers.iter().enumerate() {
        let limit = resources::container_amounts(c, &format!("spec.containers[{i}]"))?
            .limits
            .memory_bytes;
        match limit.filter(|l| *l > 0) {
            Some(l) => sum = sum.saturating_add(l),
            None => return Ok(None),
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let limit = resources::container_amounts(c, &format!("spec.initContainers[{i}]"))?
            .limits
            .memory_bytes;
        match limit.filter(|l| *l > 0) {
            Some(l) => sum = sum.max(l),
            None => return Ok(None),
        }
    }
    Ok(Some(sum).filter(|s| *s > 0))
}

/// The pod's volumes, validated: names are unique RFC 1123 labels, each
/// volume has exactly one type, and that type is `emptyDir` (`medium` `""` or
/// `Memory`, a non-negative `sizeLimit`, a `mode` up to 0o1777) or `hostPath` (absolute, no `..` or
/// `:`, a known `type`, and under one of `allowed_host_paths` by path
/// components when that list is not empty). `uid` must be a single path
/// component; emptyDirs go to `<root_dir>/pods/<uid>/volumes/<name>`.
pub fn plan_volumes(
    pod: &Pod,
    uid: &str,
    root_dir: &Path,
    allowed_host_paths: &[PathBuf],
) -> Result<PodVolumes, VolumeRefusal> {
    let single = matches!(
        Path::new(uid).components().collect::<Vec<_>>()[..],
        [Component::Normal(_)]
    );
    if !single || uid.contains('/') {
        return Err(
            FieldError::invalid("metadata.uid", uid, "must be a single path component").into(),
        );
    }
    let mut planned = PodVolumes {
        fs_group: pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group)
            .and_then(|g| u32::try_from(g).ok()),
        ..Default::default()
    };
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for (i, v) in volumes.enumerate() {
        let p = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            return Err(FieldError::new(format!("{p}.name"), "Required value").into());
        }
        if !is_dns1123_label(&v.name) {
            let msg = "must be a lowercase RFC 1123 label: at most 63 lowercase alphanumeric \
                       characters or '-', starting and ending with an alphanumeric character";
            return Err(FieldError::invalid(format!("{p}.name"), &v.name, msg).into());
        }
        if planned.volumes.contains_key(&v.name) {
            let msg = format!("Duplicate value: {:?}", v.name);
            return Err(FieldError::new(format!("{p}.name"), msg).into());
        }
        let json =
            serde_json::to_value(v).map_err(|e| FieldError::new(p.clone(), e.to_string()))?;
        let types: Vec<&String> = json
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter(|k| *k != "name")
            .collect();
        let source = match types[..] {
            [] => {
                return Err(FieldError::new(p, "Required value: must specify a volume type").into())
            }
            [_, second, ..] => {
                let msg = "Forbidden: may not specify more than 1 volume type";
                return Err(FieldError::new(format!("{p}.{second}"), msg).into());
            }
            [only] => match (&v.empty_dir, &v.host_path) {
                (None, None) if v.downward_api.is_some() => {
                    let d = v.downward_api.as_ref().expect("checked");
                    VolumeSource::DownwardApi {
                        host_dir: root_dir
                            .join("pods")
                            .join(uid)
                            .join("volumes")
                            .join(&v.name),
                        items: super::downward::plan_items(d, &format!("{p}.downwardAPI"))?,
                    }
                }
                (Some(e), _) => {
                    let medium = e.medium.as_deref().unwrap_or_default();
                    if !["", "Memory"].contains(&medium) {
                        let path = format!("{p}.emptyDir.medium");
                        return Err(FieldError::unsupported(path, medium, &["", "Memory"]).into());
                    }
                    let mode = match e.mode {
                        None => 0o777,
                        Some(m) if (0..=0o1777).contains(&m) => m as u32,
                        Some(m) => {
                            let msg = format!(
                                "Invalid value: {m}: must be a number between 0 and 0o1777 (1023)"
                            );
                            return Err(FieldError::new(format!("{p}.emptyDir.mode"), msg).into());
                        }
                    };
                    let size_limit = match &e.size_limit {
                        None => None,
                        Some(q) => {
                            let path = format!("{p}.emptyDir.sizeLimit");
                            let bytes = resources::parse_bytes(&q.0).map_err(|err| {
                                FieldError::invalid(path.clone(), &q.0, &err.to_string())
                            })?;
                            if bytes < 0 {
                                return Err(FieldError::invalid(
                                    path,
                                    &q.0,
                                    "must be greater than or equal to 0",
                                )
                                .into());
                            }
                            Some(bytes).filter(|b| *b > 0)
                        }
                    };
                    let medium_memory = medium == "Memory";
                    let size_limit = if medium_memory {
                        match (size_limit, pod_memory_limit(pod)?) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        }
                    } else {
                        size_limit
                    };
                    VolumeSource::EmptyDir {
                        host_dir: root_dir
                            .join("pods")
                            .join(uid)
                            .join("volumes")
                            .join(&v.name),
                        medium_memory,
                        size_limit,
                        mode,
                    }
                }
                (None, Some(h)) => {
                    check_absolute(format!("{p}.hostPath.path"), &h.path)?;
                    let type_ = h.type_.clone().unwrap_or_default();
                    if !HOST_PATH_TYPES.contains(&type_.as_str()) {
                        let path = format!("{p}.hostPath.type");
                        return Err(FieldError::unsupported(path, &type_, HOST_PATH_TYPES).into());
                    }
                    let path = PathBuf::from(&h.path);
                    if !allowed_host_paths.is_empty()
                        && !allowed_host_paths.iter().any(|a| path.starts_with(a))
                    {
                        let allowed: Vec<String> = allowed_host_paths
                            .iter()
                            .map(|a| a.display().to_string())
                            .collect();
                        let msg = format!(
                            "Forbidden: {:?} is not under an allowed host path (--allowed-host-paths={})",
                            h.path,
                            allowed.join(",")
                        );
                        return Err(FieldError::new(format!("{p}.hostPath.path"), msg).into());
                    }
                    VolumeSource::HostPath { path, type_ }
                }
                (None, None) => {
                    let msg = format!("Unsupported: volume type {only} is not supported");
                    return Err(VolumeRefusal::Unsupported(FieldError::new(p, msg)));
                }
            },
        };
        planned.volumes.insert(v.name.clone(), source);
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, Container, EmptyDirVolumeSource, PodSpec, Volume,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn empty_dirs_live_under_the_pod_directory() {
        let mut mem = empty_dir("cache");
        mem.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("64Mi".into())),
            mode: None,
        });
        let v = plan(vec![empty_dir("data"), mem], &[]).unwrap();
        assert_eq!(
            v.volumes["data"],
            VolumeSource::EmptyDir {
                host_dir: "/var/lib/podvisor/pods/u1/volumes/data".into(),
                medium_memory: false,
                size_limit: None,
                mode: 0o777
            }
        );
        assert_eq!(
            v.volumes["cache"],
            VolumeSource::EmptyDir {
                host_dir: "/var/lib/podvisor/pods/u1/volumes/cache".into(),
                medium_memory: true,
                size_limit: Some(64 << 20),
                mode: 0o777
            }
        );
    }

    fn memory_size(
        limits: &[Option<&str>],
        inits: &[Option<&str>],
        size_limit: Option<&str>,
    ) -> Option<i64> {
        use k8s_openapi::api::core::v1::ResourceRequirements;
        let c = |l: &Option<&str>| Container {
            resources: Some(ResourceRequirements {
                limits: l.map(|l| [("memory".to_string(), Quantity(l.into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut v = empty_dir("m");
        v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: size_limit.map(|s| Quantity(s.into())),
            mode: None,
        });
        let p = Pod {
            spec: Some(PodSpec {
                containers: limits.iter().map(c).collect(),
                init_containers: Some(inits.iter().map(c).collect()),
                volumes: Some(vec![v]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match plan_volumes(&p, "u", Path::new("/r"), &[]).unwrap().volumes["m"] {
            VolumeSource::EmptyDir { size_limit, .. } => size_limit,
            _ => unreachable!(),
        }
    }

    #[test]
    fn memory_empty_dirs_are_sized_like_the_kubelet() {
        const MI: i64 = 1 << 20;
        assert_eq!(
            memory_size(&[Some("64Mi"), Some("32Mi")], &[], None),
            Some(96 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi"), Some("32Mi")], &[], Some("10Mi")),
            Some(10 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi")], &[], Some("1Gi")),
            Some(64 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi"), None], &[], Some("1Gi")),
            Some(1 << 30)
        );
        assert_eq!(memory_size(&[Some("64Mi"), None], &[], None), None);
        assert_eq!(
            memory_size(&[Some("64Mi")], &[Some("128Mi")], None),
            Some(128 * MI)
        );
        assert_eq!(memory_size(&[Some("64Mi")], &[None], None), None);
        assert_eq!(memory_size(&[Some("0")], &[], None), None);
    }

    #[test]
    fn empty_dir_mode() {
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().mode = Some(0o1777);
        let planned = plan(vec![v], &[]).unwrap();
        assert!(matches!(
            planned.volumes["a"],
            VolumeSource::EmptyDir { mode: 0o1777, .. }
        ));
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().mode = Some(0o2000);
        assert!(plan_err(vec![v], &[])
            .starts_with("spec.volumes[0].emptyDir.mode: Invalid value: 1024"));
    }

    #[test]
    fn no_volumes_no_spec() {
        assert_eq!(plan(vec![], &[]).unwrap(), PodVolumes::default());
        let p = Pod::default();
        assert_eq!(
            plan_volumes(&p, "u", Path::new("/r"), &[]).unwrap(),
            PodVolumes::default()
        );
    }

    #[test]
    fn empty_dir_medium_and_size_are_checked() {
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().medium = Some("HugePages".into());
        assert_eq!(
            plan_err(vec![v], &[]),
            "spec.volumes[0].emptyDir.medium: Unsupported value: \"HugePages\": supported values: \"\", \"Memory\""
        );
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("-1Mi".into()));
        assert_eq!(
            plan_err(vec![v], &[]),
            "spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"-1Mi\": must be greater than or equal to 0"
        );
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("lots".into()));
        assert!(plan_err(vec![v], &[])
            .starts_with("spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"lots\""));
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("0".into()));
        let planned = plan(vec![v], &[]).unwrap();
        assert!(matches!(
            planned.volumes["a"],
            VolumeSource::EmptyDir {
                size_limit: None,
                ..
            }
        ));
    }

    #[test]
    fn host_paths_with_types() {
        let v = plan(
            vec![
                host("a", "/data/a", None),
                host("b", "/run/docker.sock", Some("Socket")),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            v.volumes["a"],
            VolumeSource::HostPath {
                path: "/data/a".into(),
                type_: "".into()
            }
        );
        assert_eq!(v.volumes["b"].host_path(), Path::new("/run/docker.sock"));
        for t in HOST_PATH_TYPES {
            assert!(plan(vec![host("a", "/x", Some(t))], &[]).is_ok(), "{t}");
        }
        let e = plan_err(vec![host("a", "/x", Some("Dir"))], &[]);
        assert!(
            e.starts_with("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"DirectoryOrCreate\""),
            "{e}"
        );
    }

    #[test]
    fn host_paths_must_be_absolute_and_clean() {
        assert_eq!(
            plan_err(vec![host("a", "data", None)], &[]),
            "spec.volumes[0].hostPath.path: Invalid value: \"data\": must be an absolute path"
        );
        assert_eq!(
            plan_err(vec![host("a", "/data/../etc", None)], &[]),
            "spec.volumes[0].hostPath.path: Invalid value: \"/data/../etc\": must not contain '..'"
        );
        assert_eq!(
            plan_err(vec![host("a", "", None)], &[]),
            "spec.volumes[0].hostPath.path: Required value"
        );
        assert!(plan_err(vec![host("a", "/a:b", None)], &[]).contains("must not contain ':'"));
    }

    #[test]
    fn allowed_host_paths_match_by_component() {
        let ok = |p: &str| plan(vec![host("a", p, None)], &["/data", "/srv/x"]).is_ok();
        assert!(ok("/data"));
        assert!(ok("/data/"));
        assert!(ok("/data/a/b"));
        assert!(ok("/data//a"));
        assert!(ok("/srv/x/y"));
        assert!(!ok("/data2"));
        assert!(!ok("/srv"));
        assert!(!ok("/"));
        assert_eq!(
            plan_err(vec![empty_dir("e"), host("h", "/etc", None)], &["/data"]),
            "spec.volumes[1].hostPath.path: Forbidden: \"/etc\" is not under an allowed host path (--allowed-host-paths=/data)"
        );
        let e = plan_err(vec![host("h", "/etc", None)], &["/data", "/srv"]);
        assert!(e.ends_with("(--allowed-host-paths=/data,/srv)"), "{e}");
        assert!(plan(vec![host("a", "/anything", None)], &["/"]).is_ok());
    }

    #[test]
    fn other_volume_types_are_named_and_refused() {
        let cm = Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Default::default()
        };
        assert_eq!(
            plan_err(vec![cm], &[]),
            "spec.volumes[0]: Unsupported: volume type configMap is not supported"
        );
        let pvc: Volume = serde_json::from_value(serde_json::json!({
            "name": "claim", "persistentVolumeClaim": {"claimName": "c"}
        }))
        .unwrap();
        assert_eq!(
            plan_err(vec![empty_dir("ok"), pvc], &[]),
            "spec.volumes[1]: Unsupported: volume type persistentVolumeClaim is not supported"
        );
        let nfs: Volume = serde_json::from_value(serde_json::json!({
            "name": "n", "nfs": {"server": "s", "path": "/"}
        }))
        .unwrap();
        assert!(plan_err(vec![nfs], &[]).contains("volume type nfs is not supported"));
    }

    #[test]
    fn volume_type_missing_or_doubled() {
        let none = Volume {
            name: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            plan_err(vec![none], &[]),
            "spec.volumes[0]: Required value: must specify a volume type"
        );
        let mut both = empty_dir("a");
        both.host_path = host("a", "/x", None).host_path;
        assert_eq!(
            plan_err(vec![both], &[]),
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"
        );
    }

    #[test]
    fn volume_names() {
        assert_eq!(
            plan_err(vec![empty_dir("a"), empty_dir("a")], &[]),
            "spec.volumes[1].name: Duplicate value: \"a\""
        );
        assert_eq!(
            plan_err(vec![empty_dir("")], &[]),
            "spec.volumes[0].name: Required value"
        );
        assert!(plan_err(vec![empty_dir("Data")], &[])
            .starts_with("spec.volumes[0].name: Invalid value: \"Data\""));
    }

    #[test]
    fn uid_must_be_one_component() {
        for uid in ["", "..", ".", "a/b", "/abs"] {
            let e = plan_volumes(&pod(vec![]), uid, Path::new("/r"), &[]).unwrap_err();
            let VolumeRefusal::Invalid(e) = e else {
                panic!("{uid:?}: {e} is not an invalid-volume refusal");
            };
            assert_eq!(e.path, "metadata.uid", "{uid:?}");
        }
    }
}
