//! The OpenAPI v3 document of what the node's Kubernetes API serves, as
//! the API server publishes it: `/openapi/v3` lists the group-versions,
//! `/openapi/v3/api/v1` is the document of `v1` (the pod and event
//! operations, and every schema they reach). kubectl reads it for
//! `explain` and for `apply` (whether the server validates fields, and
//! the strategic merge patch's keys).
//!
//! The schemas are k8s-openapi's (`schemars`), under the API server's own
//! names (`io.k8s.api.core.v1.Pod`, `allOf` references to
//! `#/components/schemas/…`); the kinds carry their
//! `x-kubernetes-group-version-kind` as kubectl expects.

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The `v1` document and its hash (the index's `?hash=`), made once.
fn v1() -> &'static (Value, String) {
    static DOC: OnceLock<(Value, String)> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = v1_document();
        let digest = Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default());
        let hash: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        (doc, hash)
    })
}

/// `/openapi/v3`.
pub fn index() -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", v1().1)}}})
}

/// `/openapi/v3/api/v1`.
pub fn api_v1() -> &'static Value {
    &v1().0
}

fn gvk(kind: &str) -> Value {
    json!([{"group": "", "version": "v1", "kind": kind}])
}

fn operation(id: &str, action: &str, kind: &str, schema: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    json!({
        "get": method(id, action, kind, schema, &[]),
        "parameters": parameters,
    })
}

/// One operation: its action, kind, answer and query parameters.
fn method(id: &str, action: &str, kind: &str, schema: &str, query: &[&str]) -> Value {
    let query: Vec<Value> = query
        .iter()
        .map(|q| json!({"name": q, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    json!({
        "operationId": id,
        "parameters": query,
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}
        }}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
    })
}

/// The query parameters of the writes. `fieldValidation` is listed so
/// that kubectl leaves validation to the server (it looks for it on the
/// PATCH operation); the server validates as the manifest directory does.
const WRITE_QUERY: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];

/// `/api/v1/namespaces/{namespace}/pods`: list and create.
fn pods_path(pod: &str) -> Value {
    let mut v = operation(
        "listCoreV1NamespacedPod",
        "list",
        "Pod",
        pod,
        &["namespace"],
    );
    v["post"] = method("createCoreV1NamespacedPod", "post", "Pod", pod, WRITE_QUERY);
    v
}

/// `/api/v1/namespaces/{namespace}/pods/{name}`: read, replace, patch, delete.
fn pod_path(pod: &str) -> Value {
    let mut v = operation(
        "readCoreV1NamespacedPod",
        "get",
        "Pod",
        pod,
        &["name", "namespace"],
    );
    v["put"] = method("replaceCoreV1NamespacedPod", "put", "Pod", pod, WRITE_QUERY);
    v["patch"] = method("patchCoreV1NamespacedPod", "patch", "Pod", pod, WRITE_QUERY);
    v["delete"] = method(
        "deleteCoreV1NamespacedPod",
        "delete",
        "Pod",
        pod,
        &["dryRun", "gracePeriodSeconds"],
    );
    v
}

fn v1_document() -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<Pod>();
    generator.subschema_for::<Event>();
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for (name, kind) in [
        ("io.k8s.api.core.v1.Pod", "Pod"),
        ("io.k8s.api.core.v1.Event", "Event"),
    ] {
        if let Some(Value::Object(s)) = schemas.get_mut(name) {
            s.insert("x-kubernetes-group-version-kind".into(), gvk(kind));
        }
    }
    let pod = "io.k8s.api.core.v1.Pod";
    let event = "io.k8s.api.core.v1.Event";
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", super::node::KUBE_MINOR)},
        "paths": {
            "/api/v1/pods": operation("listCoreV1PodForAllNamespaces", "list", "Pod", pod, &[]),
            "/api/v1/namespaces/{namespace}/pods": pods_path(pod),
            "/api/v1/namespaces/{namespace}/pods/{name}": pod_path(pod),
            "/api/v1/events": operation("listCoreV1EventForAllNamespaces", "list", "Event", event, &[]),
            "/api/v1/namespaces/{namespace}/events":
                operation("listCoreV1NamespacedEvent", "list", "Event", event, &["namespace"]),
        },
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_the_kinds_say_what_they_are() {
        let doc = api_v1();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut all = Vec::new();
        refs(doc, &mut all);
        assert!(all.len() > 100, "{} references", all.len());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a component"));
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], gvk("Pod"));
        assert!(pod["properties"]["spec"].is_object());
        let container = &schemas["io.k8s.api.core.v1.Container"];
        assert!(container["properties"]["image"]["description"].is_string());
        assert_eq!(
            doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["get"]
                ["x-kubernetes-action"],
            "get"
        );
    }

    #[test]
    fn the_index_points_at_the_document_by_its_hash() {
        let url = index()["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .to_string();
        let hash = url
            .strip_prefix("/openapi/v3/api/v1?hash=")
            .expect("the v1 URL");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, v1().1);
    }

    #[test]
    fn the_pod_patch_operation_says_the_server_validates_fields() {
        // What kubectl looks for before it leaves validation to the server.
        let pod = &api_v1()["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &pod["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        let params = patch["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
            "{params:?}"
        );
        for method in ["get", "put", "delete"] {
            assert_eq!(
                pod[method]["x-kubernetes-group-version-kind"]["kind"],
                "Pod"
            );
        }
        let pods = &api_v1()["paths"]["/api/v1/namespaces/{namespace}/pods"];
        assert_eq!(pods["post"]["x-kubernetes-action"], "post");
    }
}
