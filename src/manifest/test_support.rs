//! Helpers shared by the manifest tests.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::{parse_file, validate_pod, ManifestError, ManifestPod};

pub(super) const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx:1.27
";

pub(super) fn parse(name: &str, content: &str) -> Result<Vec<ManifestPod>, ManifestError> {
    parse_file(Path::new(name), content)
}

pub(super) fn parse_err(name: &str, content: &str) -> String {
    match parse(name, content) {
        Ok(pods) => panic!("expected an error, got {} pods", pods.len()),
        Err(err) => err.to_string(),
    }
}

/// A one-container pod spec in YAML with `extra` appended to the container.
pub(super) fn pod_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
         - name: app\n    image: busybox:1.36\n{extra}"
    )
}

pub(super) fn names(pods: &[ManifestPod]) -> Vec<&str> {
    pods.iter().map(ManifestPod::name).collect()
}

pub(super) fn pod_with(f: impl FnOnce(&mut Pod)) -> Pod {
    let mut pod = Pod::clone(&parse("p.yaml", WEB).expect("valid").remove(0).pod);
    f(&mut pod);
    pod
}

pub(super) fn spec(pod: &mut Pod) -> &mut PodSpec {
    pod.spec.as_mut().expect("spec")
}

pub(super) fn validate_msg(pod: &Pod) -> String {
    validate_pod(pod).expect_err("invalid").to_string()
}
