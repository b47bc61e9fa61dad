//! Which container of a pod a `logs`, `exec` or `attach` request means.

use k8s_openapi::api::core::v1::Pod;

/// A request that names no container of the pod (or none, when the pod
/// has several), worded as the API server words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoSuchContainer(pub String);

/// The container a request (`logs`, `exec`, `attach`) means, as the API
/// server picks it: the one named (a container or an init container of the pod), or the only
/// container when none is named.
pub fn container_name(pod: &Pod, requested: Option<&str>) -> Result<String, NoSuchContainer> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let names: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let init: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|i| i.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    // The choices, as the API server lists them after its refusals.
    let mut choices = format!("choose one of: [{}]", names.join(" "));
    if !init.is_empty() {
        choices.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    match requested {
        Some(name) if names.contains(&name) || init.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(NoSuchContainer(format!(
            "container {name} is not valid for pod {pod_name}; {choices}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None if names.is_empty() => Err(NoSuchContainer(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        None => Err(NoSuchContainer(format!(
            "a container name must be specified for pod {pod_name}, {choices}"
        ))),
    }
}
