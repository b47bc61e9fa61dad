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
//!
//! For YAML, the tree is also where plain scalars are read as kubectl reads
//! them (YAML 1.1, [`super::yaml11`]): the typed pod is decoded from the
//! tree, as kubectl decodes the JSON its YAML reader wrote.
//!
//! The tree is also where a document's size is bounded as it is read: YAML
//! aliases let 1 MB of text stand for gigabytes (`args: [*a, *a, …]` over a
//! long `&a`), and the typed decode would build all of it. The tree is read
//! first, against a budget of [`MAX_DOCUMENT_BYTES`] counted as the
//! document's JSON would take, and a document over it is refused before
//! anything else decodes it.

use std::cell::{Cell, RefCell};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};

use super::yaml11::{self, float_key};

/// A document read as a tree, with the keys written twice in it. (The keys
/// of a mapping come out sorted, so problems are named in that order.)
pub(super) struct Tree {
    pub(super) value: Value,
    /// `duplicate field "spec.containers[0].image"`, in document order.
    pub(super) duplicates: Vec<String>,
}

/// The most one document may hold, aliases expanded, counted about as its
/// JSON would take: the API server's limit on a request body (3 MiB), which
/// is what `kubectl apply` of the same file would run into.
pub const MAX_DOCUMENT_BYTES: usize = 3 << 20;

/// Why a document could not be read into a [`Tree`].
pub(super) enum TreeError<E> {
    /// It holds more than `limit` bytes once its aliases are expanded.
    TooLarge { limit: usize },
    /// The decoder's own error (syntax, a key that is no scalar, ...).
    Decode(E),
}

impl<E> TreeError<E> {
    pub(super) fn map<F>(self, f: impl FnOnce(E) -> F) -> TreeError<F> {
        match self {
            TreeError::TooLarge { limit } => TreeError::TooLarge { limit },
            TreeError::Decode(e) => TreeError::Decode(f(e)),
        }
    }
}

/// What a document may still hold while it is read.
struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("document too large"))
            }
        }
    }
}

/// Reads one document (YAML or JSON) into a [`Tree`], within `limit`
/// bytes (see [`MAX_DOCUMENT_BYTES`]). `yaml` is the text a YAML document
/// is read from: its plain scalars are then resolved by YAML 1.1's rules
/// ([`super::yaml11`]) and its quoted ones kept as strings.
pub(super) fn read_tree<'de, D: de::Deserializer<'de>>(
    d: D,
    limit: usize,
    yaml: Option<&'de str>,
) -> Result<Tree, TreeError<D::Error>> {
    let duplicates = RefCell::new(Vec::new());
    let budget = Budget {
        left: Cell::new(limit),
        exceeded: Cell::new(false),
    };
    let value = Node {
        path: String::new(),
        duplicates: &duplicates,
        budget: &budget,
        yaml,
    }
    .deserialize(d);
    match value {
        _ if budget.exceeded.get() => Err(TreeError::TooLarge { limit }),
        Err(e) => Err(TreeError::Decode(e)),
        Ok(value) => Ok(Tree {
            value,
            duplicates: duplicates.into_inner(),
        }),
    }
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
struct Node<'a, 'de> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
    budget: &'a Budget,
    /// The YAML text, for telling plain scalars from quoted ones.
    yaml: Option<&'de str>,
}

/// Whether `v`, a scalar borrowed from `text`, is written there unquoted.
/// serde_yaml_ng hands out a plain scalar as the very bytes of the text,
/// a quoted one (without escapes) as the bytes between its quotes; a
/// scalar it had to build (escapes, folded lines, block scalars) is not
/// borrowed, and none of those is a plain number or boolean.
fn is_plain(text: &str, v: &str) -> bool {
    let (base, at) = (text.as_ptr() as usize, v.as_ptr() as usize);
    if at < base || at + v.len() > base + text.len() {
        return false;
    }
    let (start, end) = (at - base, at - base + v.len());
    let before = start.checked_sub(1).map(|i| text.as_bytes()[i]);
    let after = text.as_bytes().get(end).copied();
    let quoted = matches!(before, Some(b'"' | b'\'')) && before == after;
    // An explicit `!!str` (or any local tag) keeps the text as it is.
    let tagged = text[..start]
        .trim_end_matches([' ', '\t'])
        .rsplit([' ', '\t', '\n', '[', '{', ',', ':'])
        .next()
        .is_some_and(|token| token.starts_with('!'));
    !quoted && !tagged
}

/// What a number, `true` or `null` costs against the budget (its JSON and
/// a separator, about).
const SCALAR_BYTES: usize = 8;

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        if self.yaml.is_none() {
            return Ok(Value::from(v));
        }
        yaml11::json_float(v).ok_or_else(|| E::custom(yaml11::not_json(&float_key(v))))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        match self.yaml {
            Some(text) if is_plain(text, v) => {
                self.budget.charge(v.len() + 3)?;
                yaml11::plain_to_json(v).map_err(E::custom)
            }
            _ => self.visit_str(v),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.charge(v.len() + 3)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.charge(v.len() + 3)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.budget.charge(SCALAR_BYTES)?;
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.charge(2)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: self.duplicates,
            budget: self.budget,
            yaml: self.yaml,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.charge(2)?;
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key_seed(KeySeed(self.yaml))? {
            self.budget.charge(key.len() + 4)?;
            let path = join(&self.path, &key);
            let value = map.next_value_seed(Node {
                path: path.clone(),
                duplicates: self.duplicates,
                budget: self.budget,
                yaml: self.yaml,
            })?;
            if out.insert(key, value).is_some() {
                let dup = format!("duplicate field {path:?}");
                self.duplicates.borrow_mut().push(dup);
            }
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key: any scalar, as text (a YAML 1.1 boolean or number as
/// `sigs.k8s.io/yaml` writes it: `yes:` is the key `"true"`).
struct Key(String);

/// Reads a [`Key`]; with the YAML text, plain keys are resolved.
struct KeySeed<'de>(Option<&'de str>);

impl<'de> DeserializeSeed<'de> for KeySeed<'de> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_any(KeyVisitor(self.0))
    }
}

struct KeyVisitor<'de>(Option<&'de str>);

impl<'de> Visitor<'de> for KeyVisitor<'de> {
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
        Ok(Key(match self.0 {
            Some(_) => float_key(v),
            None => v.to_string(),
        }))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key, E> {
        match self.0 {
            Some(text) if is_plain(text, v) => Ok(Key(yaml11::plain_key(v))),
            _ => Ok(Key(v.to_owned())),
        }
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
    use super::{read_tree, TreeError};
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

    /// A pod whose `args` are `n` aliases of one `len`-byte string.
    fn amplified(n: usize, len: usize) -> String {
        format!(
            "{}    args: [{}]\n",
            pod_yaml("p", "").replace(
                "  name: p\n",
                &format!(
                    "  name: p\n  annotations:\n    a: &a \"{}\"\n",
                    "x".repeat(len)
                )
            ),
            vec!["*a"; n].join(", ")
        )
    }

    #[test]
    fn a_document_expanding_past_the_limit_is_refused_before_it_is_decoded() {
        // 20 KB of text standing for 5 MB of arguments.
        let bomb = amplified(5000, 1024);
        assert!(bomb.len() < 25_000);
        let err = parse_err("p.yaml", &bomb);
        assert!(
            err.contains("document 0: Request entity too large: more than 3145728 bytes")
                && err.contains("YAML aliases"),
            "{err}"
        );
        // The same anchors and aliases within the limit are fine.
        let fine = parse("p.yaml", &amplified(100, 1024)).expect("within the limit");
        let args = fine[0].pod.spec.as_ref().unwrap().containers[0]
            .args
            .clone();
        assert_eq!(args.map(|a| a.len()), Some(100));
    }

    #[test]
    fn the_limit_counts_the_document_as_json_would_take() {
        let text = r#"{"a": "xxxxxxxx", "b": [1, true, null]}"#;
        let read = |limit| {
            read_tree(&mut serde_json::Deserializer::from_str(text), limit, None)
                .map(|t| t.value)
                .map_err(|e| matches!(e, TreeError::TooLarge { .. }))
        };
        assert_eq!(read(1000).unwrap()["a"], "xxxxxxxx");
        assert!(read(10).unwrap_err(), "too large");
        // Each part is charged: 2 (the object) + 5 and 11 ("a" and its
        // string) + 5 and 2 + 3 × 8 (the array and its scalars) = 49.
        assert!(read(49).is_ok());
        assert!(read(48).unwrap_err());
    }
}
