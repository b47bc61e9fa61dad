//! [`check_subpaths`]: a `subPath` must not go through a symlink.

use std::io;
use std::path::Path;

use k8s_openapi::api::core::v1::Container;

use super::{io_failure, Failure, VolumeError};
use crate::host::{FileKind, Host};
use crate::spec::volumes::PodVolumes;

/// Refuses a `subPath` that goes through a symlink inside its volume: Docker
/// resolves a bind's source on the host, so a link a container made in an
/// emptyDir (`sub -> /`) would expose the host. Call it right before creating
/// the container (a race with a running container remains). Components that
/// do not exist yet are fine (Docker creates them).
pub fn check_subpaths(
    host: &dyn Host,
    c: &Container,
    vols: &PodVolumes,
) -> Result<(), VolumeError> {
    for m in c.volume_mounts.iter().flatten() {
        let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(volume) = vols.volumes.get(&m.name) else {
            continue;
        };
        let fail = |failure| VolumeError {
            volume: Some(m.name.clone()),
            failure,
        };
        let mut current = volume.host_path().to_path_buf();
        for component in Path::new(sub).components() {
            current.push(component);
            match host.lstat(&current) {
                Ok(FileKind::Symlink) => {
                    return Err(fail(Failure::SymlinkInSubPath {
                        sub: sub.to_string(),
                        volume: m.name.clone(),
                        path: current,
                    }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(fail(io_failure("stat", &current)(e))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, HostCall, Op};
    use crate::host::{setup_volumes, teardown_volumes, RealHost};
    use crate::spec::volumes::fixtures::pod;
    use crate::spec::volumes::fixtures::{empty_dir, plan};
    use crate::spec::volumes::plan_volumes;
    use k8s_openapi::api::core::v1::VolumeMount;
    use std::fs;
    use std::path::PathBuf;

    fn with_sub_paths(subs: &[(&str, &str)]) -> Container {
        Container {
            volume_mounts: Some(
                subs.iter()
                    .enumerate()
                    .map(|(i, (name, sub))| VolumeMount {
                        name: name.to_string(),
                        mount_path: format!("/m{i}"),
                        sub_path: Some(sub.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    const DATA: &str = "/var/lib/podvisor/pods/u1/volumes/data";

    #[test]
    fn each_component_is_looked_at_until_one_is_missing() {
        let fake = FakeHost::new();
        fake.add_dir(format!("{DATA}/a"), 0o755);
        let vols = plan(vec![empty_dir("data")], &[]).unwrap();
        let c = with_sub_paths(&[("data", "a/b/c"), ("data", ""), ("ghost", "x")]);
        check_subpaths(&fake, &c, &vols).unwrap();
        assert_eq!(
            fake.calls(),
            vec![
                HostCall::Lstat(PathBuf::from(DATA).join("a")),
                HostCall::Lstat(PathBuf::from(DATA).join("a/b")),
            ]
        );
    }

    #[test]
    fn a_symlink_names_the_volume_and_an_unreadable_component_too() {
        let fake = FakeHost::new();
        fake.add_symlink(format!("{DATA}/a/escape"), "/");
        let vols = plan(vec![empty_dir("data")], &[]).unwrap();
        let e =
            check_subpaths(&fake, &with_sub_paths(&[("data", "a/escape/etc")]), &vols).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("data"));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            format!("subPath \"a/escape/etc\" of volume \"data\": {DATA}/a/escape is a symlink; refusing to follow it")
        );
        fake.fail(Op::Lstat, format!("{DATA}/a"));
        let e = check_subpaths(&fake, &with_sub_paths(&[("data", "a")]), &vols).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("data"));
        assert_eq!(e.to_string(), format!("stat {DATA}/a: permission denied"));
        assert!(fake.changes().is_empty());
    }

    // --- Against the real host (tempdirs) ---

    #[test]
    fn sub_paths_through_symlinks_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let p = pod(vec![empty_dir("data")]);
        let vols = plan_volumes(&p, "u", root.path(), &[]).unwrap();
        let uid_dir = root.path().join("pods/u");
        setup_volumes(&RealHost, &vols, &uid_dir).unwrap();
        let data = uid_dir.join("volumes/data");
        fs::create_dir(data.join("real")).unwrap();
        std::os::unix::fs::symlink("/", data.join("escape")).unwrap();
        let container = |sub: &str| Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/m".into(),
                sub_path: Some(sub.into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        check_subpaths(&RealHost, &container("real"), &vols).unwrap();
        check_subpaths(&RealHost, &container("real/not/yet"), &vols).unwrap();
        check_subpaths(&RealHost, &container("new"), &vols).unwrap();
        let e = check_subpaths(&RealHost, &container("escape/etc"), &vols).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("is a symlink"), "{e}");
        teardown_volumes(&RealHost, &uid_dir).unwrap();
    }
}
