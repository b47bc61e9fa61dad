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
}
