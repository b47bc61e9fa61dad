//! Volumes and pods for the volume tests (here and in `crate::host`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, HostPathVolumeSource, Pod, PodSpec, Volume,
};

use super::{plan_volumes, PodVolumes, VolumeRefusal};

pub(crate) fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

pub(crate) fn host(name: &str, path: &str, type_: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: type_.map(Into::into),
        }),
        ..Default::default()
    }
}

pub(crate) fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn plan(volumes: Vec<Volume>, allowed: &[&str]) -> Result<PodVolumes, VolumeRefusal> {
    let allowed: Vec<PathBuf> = allowed.iter().map(PathBuf::from).collect();
    plan_volumes(
        &pod(volumes),
        "u1",
        Path::new("/var/lib/podvisor"),
        &allowed,
    )
}

pub(crate) fn plan_err(volumes: Vec<Volume>, allowed: &[&str]) -> String {
    plan(volumes, allowed).unwrap_err().to_string()
}
