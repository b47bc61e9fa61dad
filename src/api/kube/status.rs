//! `meta.k8s.io` `Status` bodies: what the API server answers instead of an
//! object when a request fails, and what `kubectl` prints after
//! `Error from server (<reason>):`.

use serde_json::{json, Value};

/// A `Status` with `status: Failure`, the HTTP `code`, a CamelCase `reason`
/// (`NotFound`, `BadRequest`, ...) and a human `message`.
pub fn status(code: u16, reason: &str, message: String) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// 404 for the object `name` of `resource` (the plural the URL names, as the
/// API server words it): `pods "web" not found`.
pub fn not_found(resource: &str, name: &str) -> Value {
    let mut v = status(404, "NotFound", format!("{resource} \"{name}\" not found"));
    v["details"] = json!({ "name": name, "kind": resource });
    v
}

/// 400: the request itself is wrong (a selector that does not parse, a field
/// label that is not supported, ...).
pub fn bad_request(message: impl Into<String>) -> Value {
    status(400, "BadRequest", message.into())
}

/// 401: no or wrong credentials. The message is the API server's, which
/// says nothing more on purpose.
pub fn unauthorized() -> Value {
    status(401, "Unauthorized", "Unauthorized".into())
}

/// 405: `action` (a verb such as `create` or `deletecollection`) is not
/// served for `resource`: `create is not supported on resources of kind "pods"`.
pub fn method_not_allowed(action: &str, resource: &str) -> Value {
    let mut v = status(
        405,
        "MethodNotAllowed",
        format!("{action} is not supported on resources of kind \"{resource}\""),
    );
    v["details"] = json!({ "kind": resource });
    v
}

/// 409: creating `name` when it exists: `pods "web" already exists`.
pub fn already_exists(resource: &str, name: &str) -> Value {
    let mut v = status(
        409,
        "AlreadyExists",
        format!("{resource} \"{name}\" already exists"),
    );
    v["details"] = json!({ "name": name, "kind": resource });
    v
}

/// 409: the change cannot be made to `name` as it is now (a stale
/// `resourceVersion`, a file that declares other pods too):
/// `Operation cannot be fulfilled on pods "web": <why>`.
pub fn conflict(resource: &str, name: &str, why: &str) -> Value {
    let mut v = status(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
    );
    v["details"] = json!({ "name": name, "kind": resource });
    v
}

/// 422: the object `name` of `kind` fails validation at `field`:
/// `Pod "web" is invalid: spec.containers[0].image: Required value`.
pub fn invalid(kind: &str, name: &str, field: &str, why: &str) -> Value {
    let mut v = status(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {field}: {why}"),
    );
    v["details"] = json!({
        "name": name,
        "kind": kind.to_lowercase() + "s",
        "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
    });
    v
}

/// 403: `user` may not `verb` the `resource`:
/// `pods "web" is forbidden: User "alice" cannot delete resource "pods" in
/// API group "" in the namespace "default"`.
pub fn forbidden(user: &str, verb: &str, resource: &str, name: &str, namespace: &str) -> Value {
    let (plural, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let what = if name.is_empty() {
        format!("{plural} is forbidden")
    } else {
        format!("{plural} \"{name}\" is forbidden")
    };
    let sub = if sub.is_empty() {
        String::new()
    } else {
        format!("/{sub}")
    };
    let mut v = status(
        403,
        "Forbidden",
        format!(
            "{what}: User \"{user}\" cannot {verb} resource \"{plural}{sub}\" in API group \"\" in the namespace \"{namespace}\""
        ),
    );
    v["details"] = json!({ "name": name, "kind": plural });
    v
}

/// 415: a body in a format the verb does not take (a PATCH of another
/// content type), with the ones it does.
pub fn unsupported_media_type(got: &str, accepted: &[&str]) -> Value {
    status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format ({got:?}) - accepted media types include: {}",
            accepted.join(", ")
        ),
    )
}

/// 200 `Success` for an object gone at once (a delete with nothing left
/// to wait for).
pub fn success(resource: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "kind": resource, "uid": uid },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_the_api_server_shape() {
        let v = status(409, "AlreadyExists", "taken".into());
        assert_eq!(
            v,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "taken", "reason": "AlreadyExists", "code": 409,
            })
        );
    }

    #[test]
    fn not_found_names_the_resource_and_the_object() {
        let v = not_found("pods", "web");
        assert_eq!(v["code"], 404);
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(v["message"], "pods \"web\" not found");
        assert_eq!(v["details"], json!({"name": "web", "kind": "pods"}));
    }

    #[test]
    fn bad_request_carries_the_message() {
        let v = bad_request("field label not supported: spec.foo");
        assert_eq!(v["code"], 400);
        assert_eq!(v["reason"], "BadRequest");
        assert_eq!(v["message"], "field label not supported: spec.foo");
        assert!(v.get("details").is_none());
    }

    #[test]
    fn unauthorized_says_only_unauthorized() {
        let v = unauthorized();
        assert_eq!(v["code"], 401);
        assert_eq!(v["reason"], "Unauthorized");
        assert_eq!(v["message"], "Unauthorized");
    }

    #[test]
    fn method_not_allowed_names_verb_and_resource() {
        let v = method_not_allowed("deletecollection", "pods");
        assert_eq!(v["code"], 405);
        assert_eq!(v["reason"], "MethodNotAllowed");
        assert_eq!(
            v["message"],
            "deletecollection is not supported on resources of kind \"pods\""
        );
        assert_eq!(v["details"]["kind"], "pods");
    }

    #[test]
    fn write_failures_are_worded_as_the_api_server_words_them() {
        let v = already_exists("pods", "web");
        assert_eq!(
            (v["code"].as_u64(), v["reason"].as_str()),
            (Some(409), Some("AlreadyExists"))
        );
        assert_eq!(v["message"], "pods \"web\" already exists");
        let v = conflict("pods", "web", "the object has been modified");
        assert_eq!(
            (v["code"].as_u64(), v["reason"].as_str()),
            (Some(409), Some("Conflict"))
        );
        assert_eq!(
            v["message"],
            "Operation cannot be fulfilled on pods \"web\": the object has been modified"
        );
        let v = invalid("Pod", "web", "spec.containers[0].image", "Required value");
        assert_eq!(
            (v["code"].as_u64(), v["reason"].as_str()),
            (Some(422), Some("Invalid"))
        );
        assert_eq!(
            v["message"],
            "Pod \"web\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(
            v["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        let v = forbidden("alice", "delete", "pods", "web", "default");
        assert_eq!(v["code"], 403);
        assert_eq!(
            v["message"],
            "pods \"web\" is forbidden: User \"alice\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let v = forbidden("alice", "create", "pods/exec", "web", "default");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("resource \"pods/exec\""),
            "{v}"
        );
        let v = unsupported_media_type("text/plain", &["application/merge-patch+json"]);
        assert_eq!(
            (v["code"].as_u64(), v["reason"].as_str()),
            (Some(415), Some("UnsupportedMediaType"))
        );
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("text/plain"),
            "{v}"
        );
        let v = success("pods", "web", "u1");
        assert_eq!(v["status"], "Success");
        assert_eq!(v["details"]["uid"], "u1");
    }
}
