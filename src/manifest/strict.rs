//! Strict decoding, as `kubectl apply`'s server-side field validation does
//! it: a field the `v1` Pod schema does not have, or a key written twice in
//! one mapping, is a problem (refused with `--manifest-validation=strict`,
//! logged with `warn`).
//!
//! - Duplicate keys: each document is read a second time into a
//!   [`serde_json::Value`] by a visitor that records every key seen twice in
//!   one mapping (both YAML and JSON keep the last one silently otherwise).
//! - Unknown fields: the typed pod (k8s-openapi's schema) is serialized back
//!   to a `Value`; every key of the input whose value is not `null` must be
//!   there too. k8s-openapi serializes every field that is set, empty or
//!   not, and keeps every key of a free-form map (labels, annotations,
//!   resources), so a key missing after the round trip is one the schema
//!   does not know.

use std::cell::RefCell;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};

/// A document read as a tree, with the keys written twice in it. (The keys
/// of a mapping come out sorted, so problems are named in that order.)
pub(super) struct Tree {
    pub(super) value: Value,
    /// `duplicate field "spec.containers[0].image"`, in document order.
    pub(super) duplicates: Vec<String>,
}

/// Reads one document (YAML or JSON) into a [`Tree`].
pub(super) fn read_tree<'de, D: de::Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
    let duplicates = RefCell::new(Vec::new());
    let value = Node {
        path: String::new(),
        duplicates: &duplicates,
    }
    .deserialize(d)?;
    Ok(Tree {
        value,
        duplicates: duplicates.into_inner(),
    })
}

/// The fields of `input` (the document as written) that `typed` (the same
/// document decoded and serialized back) lacks: `unknown field "spec.x"`.
pub(super) fn unknown_fields(input: &Value, typed: &impl Serialize, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    match serde_json::to_value(typed) {
        Ok(known) => diff(input, &known, prefix, &mut out),
        Err(e) => out.push(format!("cannot check fields: {e}")),
    }
    out
}

/// The unknown fields of a `v1` `List` document: its own keys and its
/// metadata's (its items are checked as pods).
pub(super) fn unknown_list_fields(input: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Object(map) = input else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" | "items" => {}
            "metadata" => {
                let meta: ListMeta = serde_json::from_value(value.clone()).unwrap_or_default();
                out.extend(unknown_fields(value, &meta, "metadata"));
            }
            _ if value.is_null() => {}
            _ => out.push(format!("unknown field {key:?}")),
        }
    }
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn diff(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let child = join(path, key);
                match known.get(key) {
                    _ if value.is_null() => {}
                    None => out.push(format!("unknown field {child:?}")),
                    Some(known) => diff(value, known, &child, out),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, known)) in input.iter().zip(known).enumerate() {
                diff(value, known, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// One node of the tree being read, at `path`.
struct Node<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let path = join(&self.path, &key);
            let value = map.next_value_seed(Node {
                path: path.clone(),
                duplicates: self.duplicates,
            })?;
            if out.insert(key, value).is_some() {
                let dup = format!("duplicate field {path:?}");
                self.duplicates.borrow_mut().push(dup);
            }
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key: any scalar, as text.
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Key, E> {
        Ok(Key("null".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse_file_with;
    use crate::manifest::test_support::*;
    use crate::settings::ManifestValidation;

    #[test]
    fn an_unknown_field_is_refused_with_its_path() {
        let content = format!("{WEB}  restartPolicly: Never\n");
        assert_eq!(
            parse_err("p.yaml", &content),
            r#"p.yaml: document 0: strict decoding error: unknown field "spec.restartPolicly""#
        );
    }

    #[test]
    fn unknown_fields_in_lists_and_nested_objects_are_named() {
        let content = pod_yaml(
            "web",
            "  - name: two\n    image: x:1\n    ports:\n    - containerPort: 80\n      hostPorts: 80\n    \
             livenessProbe:\n      exec: {command: [a]}\n      periodSecond: 3\n",
        );
        assert_eq!(
            parse_err("p.yaml", &content),
            "p.yaml: document 0: strict decoding error: \
             unknown field \"spec.containers[1].livenessProbe.periodSecond\", \
             unknown field \"spec.containers[1].ports[0].hostPorts\""
        );
        let content = WEB.replace("  name: web\n", "  name: web\n  lables: {a: b}\n");
        let err = parse_err("p.yaml", &content);
        assert!(err.ends_with(r#"unknown field "metadata.lables""#), "{err}");
    }

    #[test]
    fn a_duplicate_key_is_refused() {
        let content = format!("{WEB}    image: nginx:1.28\n");
        assert_eq!(
            parse_err("p.yaml", &content),
            r#"p.yaml: document 0: strict decoding error: duplicate field "spec.containers[0].image""#
        );
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","name":"k"},
            "spec":{"containers":[{"name":"c","image":"redis:7"}]}}"#;
        let err = parse_err("j.json", json);
        assert!(err.ends_with(r#"duplicate field "metadata.name""#), "{err}");
        let content = WEB.replace("  name: web\n", "  name: web\n  labels: {a: b, a: c}\n");
        let err = parse_err("p.yaml", &content);
        assert!(
            err.ends_with(r#"duplicate field "metadata.labels.a""#),
            "{err}"
        );
    }

    #[test]
    fn free_form_maps_empty_objects_and_nulls_are_known() {
        let content = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, example.com/Any_Key: v}
  annotations: {anything.io/goes: here}
  creationTimestamp: null
spec:
  nodeSelector: {disk: ssd}
  securityContext: {}
  volumes:
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: nginx:1.27
    command: null
    args: []
    resources:
      limits: {cpu: 500m, memory: 64Mi, example.com/dongle: 1}
      requests: {cpu: 100m, example.com/dongle: 1}
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
status:
  phase: Running
  conditions:
  - {type: Ready, status: \"True\", lastProbeTime: null}
";
        let pods = parse("p.yaml", content).expect("all known");
        assert_eq!(names(&pods), ["web"]);
    }

    #[test]
    fn list_documents_are_checked_item_by_item() {
        let content = "apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:
- {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: x:1}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: [{name: c, image: x:1, tyy: true}]}}
";
        let err = parse_err("l.yaml", content);
        assert!(
            err.ends_with(r#"unknown field "items[1].spec.containers[0].tyy""#),
            "{err}"
        );
        let content = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: \"\", colour: red}\nitems: []\n";
        let err = parse_err("l.yaml", content);
        assert!(err.ends_with(r#"unknown field "metadata.colour""#), "{err}");
        let err = parse_err("l.yaml", "apiVersion: v1\nkind: List\nitem: []\n");
        assert!(err.ends_with(r#"unknown field "item""#), "{err}");
    }

    #[test]
    fn warn_mode_accepts_unknown_and_duplicate_fields() {
        let content = format!("{WEB}    image: nginx:1.28\n  restartPolicly: Never\n");
        let pods = parse_file_with(Path::new("p.yaml"), &content, ManifestValidation::Warn)
            .expect("accepted with warnings");
        let spec = pods[0].pod.spec.as_ref().expect("spec");
        assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.28"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        let strict = parse_file_with(Path::new("p.yaml"), &content, ManifestValidation::Strict);
        assert!(strict.is_err());
    }
}
