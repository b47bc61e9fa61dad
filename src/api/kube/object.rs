//! A pod sent to the API, made into what a manifest file holds.
//!
//! The API's writes go through the manifest directory (files stay the
//! source of truth), so what a client sends is checked and cleaned here:
//! names that could never be a file name are refused before anything
//! else, and the fields the server sets (`status`, `resourceVersion`,
//! `creationTimestamp`, `managedFields`, ...) are not written into the
//! file. Pure: the HTTP glue is `api::write`.

use serde_json::{Map, Value};

use crate::manifest::{is_dns1123_label, is_dns1123_subdomain, FieldError};

/// Metadata the server sets; never written into a manifest.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
    "uid",
];

/// Why a sent pod cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Not a JSON/YAML object, or not a `v1` `Pod`.
    #[error("{0}")]
    NotAPod(String),
    /// A field the API server would refuse (a bad name, a namespace other
    /// than the URL's).
    #[error("{0}")]
    Invalid(FieldError),
    /// The body names another object than the URL.
    #[error("{0}")]
    Mismatch(String),
}

/// Checks a name from a URL or a body: an RFC 1123 subdomain (a pod) or
/// label (a namespace), so never `..`, `/` or empty: the manifest file
/// `<namespace>_<name>.yaml` stays inside the directory.
pub fn check_names(namespace: &str, name: &str) -> Result<(), FieldError> {
    if !is_dns1123_label(namespace) {
        return Err(FieldError {
            path: "metadata.namespace".into(),
            message: format!(
                "Invalid value: {namespace:?}: a lowercase RFC 1123 label must consist of lower case \
                 alphanumeric characters or '-', and must start and end with an alphanumeric character"
            ),
        });
    }
    if !is_dns1123_subdomain(name) {
        return Err(FieldError {
            path: "metadata.name".into(),
            message: format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
                 character"
            ),
        });
    }
    Ok(())
}

/// The manifest file of a pod created through the API.
pub fn file_name(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}.yaml")
}

/// `metadata.name` of a sent pod ("" when it has none).
pub fn name_of(pod: &Value) -> &str {
    pod.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion` of a sent pod, when it names one.
pub fn resource_version_of(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// What a manifest file holds for the pod `pod` sent for `namespace`
/// (and, on a replace or patch, for `name`):
/// - it must be a `v1` `Pod` with a valid name, in `namespace` (an empty
///   namespace becomes `namespace`, another one is refused, as the API
///   server does);
/// - the server's fields are dropped: `status`, the metadata the server
///   sets, and `spec.nodeName` when it is this node's (the API shows it);
/// - `uid` is the file's own (`keep_uid`) when it had one, none otherwise.
pub fn for_file(
    pod: &Value,
    namespace: &str,
    name: Option<&str>,
    node_name: &str,
    keep_uid: Option<&str>,
) -> Result<Value, ObjectError> {
    let Some(object) = pod.as_object() else {
        return Err(ObjectError::NotAPod(
            "the body is not an object: a v1 Pod is expected".into(),
        ));
    };
    let mut object = object.clone();
    check_kind(&object)?;
    object.insert("apiVersion".into(), "v1".into());
    object.insert("kind".into(), "Pod".into());
    object.remove("status");
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(ObjectError::NotAPod("metadata: not an object".into()));
    };
    match metadata.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            metadata.insert("namespace".into(), namespace.into());
        }
        Some(ns) if ns != namespace => {
            return Err(ObjectError::Mismatch(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
            )))
        }
        Some(_) => {}
    }
    let body_name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if body_name.is_empty() {
        return Err(ObjectError::Invalid(FieldError {
            path: "metadata.name".into(),
            message: "Required value: name is required (generateName is not served)".into(),
        }));
    }
    if let Some(name) = name {
        if body_name != name {
            return Err(ObjectError::Mismatch(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    check_names(namespace, &body_name).map_err(ObjectError::Invalid)?;
    for key in SERVER_METADATA {
        metadata.remove(*key);
    }
    if let Some(uid) = keep_uid {
        metadata.insert("uid".into(), uid.into());
    }
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if spec.get("nodeName").and_then(Value::as_str) == Some(node_name) {
            spec.remove("nodeName");
        }
    }
    Ok(Value::Object(object))
}

fn check_kind(object: &Map<String, Value>) -> Result<(), ObjectError> {
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (None | Some("v1"), None | Some("Pod")) => Ok(()),
        (v, k) => Err(ObjectError::NotAPod(format!(
            "this resource takes a v1 Pod, not {} {}",
            v.unwrap_or("(no apiVersion)"),
            k.unwrap_or("(no kind)")
        ))),
    }
}

/// `metadata.uid` of a file's pod, when it sets one.
pub fn uid_of(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sent() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web", "resourceVersion": "17", "uid": "server-made",
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [],
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running"},
        })
    }

    #[test]
    fn server_fields_are_not_written_and_the_rest_is() {
        let v = for_file(&sent(), "default", None, "n1", None).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": "web", "namespace": "default",
                    "labels": {"app": "web"},
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                },
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            })
        );
    }

    #[test]
    fn the_files_own_uid_and_another_nodes_name_are_kept() {
        let mut pod = sent();
        pod["spec"]["nodeName"] = "elsewhere".into();
        let v = for_file(&pod, "default", Some("web"), "n1", Some("mine")).unwrap();
        assert_eq!(v["metadata"]["uid"], "mine");
        assert_eq!(v["spec"]["nodeName"], "elsewhere");
    }

    #[test]
    fn another_namespace_or_name_than_the_urls_is_refused() {
        let mut pod = sent();
        pod["metadata"]["namespace"] = "team".into();
        let e = for_file(&pod, "default", None, "n1", None).unwrap_err();
        assert!(
            matches!(&e, ObjectError::Mismatch(m) if m.contains("(team)")),
            "{e}"
        );
        let e = for_file(&sent(), "default", Some("db"), "n1", None).unwrap_err();
        assert!(
            matches!(&e, ObjectError::Mismatch(m) if m.contains("(db)")),
            "{e}"
        );
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        for bad in ["../../etc/x", "a/b", "", "..", "Web", "a_b"] {
            let e = check_names("default", bad).unwrap_err();
            assert_eq!(e.path, "metadata.name", "{bad}");
        }
        assert_eq!(
            check_names("../x", "web").unwrap_err().path,
            "metadata.namespace"
        );
        let mut pod = sent();
        pod["metadata"]["name"] = "../../etc/x".into();
        let e = for_file(&pod, "default", None, "n1", None).unwrap_err();
        assert!(
            matches!(&e, ObjectError::Invalid(f) if f.path == "metadata.name"),
            "{e}"
        );
        check_names("default", "web-1.a").unwrap();
        assert_eq!(file_name("default", "web"), "default_web.yaml");
    }

    #[test]
    fn only_a_v1_pod_with_a_name_is_taken() {
        let e = for_file(&json!([1]), "default", None, "n1", None).unwrap_err();
        assert!(matches!(e, ObjectError::NotAPod(_)));
        let mut pod = sent();
        pod["kind"] = "Service".into();
        let e = for_file(&pod, "default", None, "n1", None).unwrap_err();
        assert!(e.to_string().contains("Service"), "{e}");
        let mut pod = sent();
        pod["metadata"].as_object_mut().unwrap().remove("name");
        let e = for_file(&pod, "default", None, "n1", None).unwrap_err();
        assert!(
            matches!(&e, ObjectError::Invalid(f) if f.path == "metadata.name"),
            "{e}"
        );
    }

    #[test]
    fn accessors_read_the_metadata() {
        let pod = sent();
        assert_eq!(name_of(&pod), "web");
        assert_eq!(resource_version_of(&pod), Some("17"));
        assert_eq!(uid_of(&pod), Some("server-made"));
        assert_eq!(resource_version_of(&json!({})), None);
    }
}
