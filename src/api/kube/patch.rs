//! `PATCH` bodies applied to a Pod the way the API server applies them, so
//! that `kubectl patch` (all three `--type`s) and `kubectl apply` work.
//!
//! The request's `Content-Type` picks the kind ([`PatchKind::from_content_type`]):
//!
//! - `application/json-patch+json`: a JSON patch (RFC 6902), a list of
//!   `add` / `remove` / `replace` / `move` / `copy` / `test` operations on
//!   JSON pointers, applied in order; a failed `test` fails the whole patch.
//!   Done by the `json-patch` crate.
//! - `application/merge-patch+json`: a JSON merge patch (RFC 7386): objects
//!   merge key by key, `null` deletes a key, anything else (lists included)
//!   replaces. Done by the `json-patch` crate. A merge patch that is not an
//!   object (it would replace the Pod with itself) is refused.
//! - `application/strategic-merge-patch+json` (what `kubectl apply` and a
//!   plain `kubectl patch` send): the merge patch above, except that some
//!   lists are merged element by element instead of replaced, and a few
//!   `$` directives steer the merge. Written here after
//!   `k8s.io/apimachinery/pkg/util/strategicpatch` (`mergeMap`, `mergeSlice`,
//!   `normalizeElementOrder`), whose behaviour it follows, ordering quirks
//!   included; the differences are listed below.
//!
//! Which lists merge, and by which key, comes from the `patchStrategy` /
//! `patchMergeKey` tags of the Go types behind a v1 Pod (`k8s.io/api/core/v1`
//! `PodSpec`, `Container`, `EphemeralContainerCommon`, `PodStatus`, and
//! `k8s.io/apimachinery/pkg/apis/meta/v1` `ObjectMeta`). They are all in one
//! table, `LIST_STRATEGIES`; a list that is not in it is replaced whole, as
//! a list without tags is upstream (`tolerations`, `readinessGates`,
//! `securityContext.sysctls`, `command`, `args`, `containerStatuses`, ...).
//! Maps (objects) always merge.
//!
//! Strategic merge patch directives:
//!
//! - `"$patch": "replace"` in an object: the object becomes the patch's
//!   object (less the directive); in an element of a merged list: the whole
//!   list becomes the patch's other elements.
//! - `"$patch": "delete"` in an object: the key holding it is removed; in an
//!   element of a merged list: every element with that merge key is removed.
//! - `"$patch": "merge"`: the default, so it changes nothing.
//! - `"$retainKeys": [..]`: keys of the object that are not listed are
//!   removed before the patch is merged; a key set by the patch must be listed.
//! - `"$deleteFromPrimitiveList/<field>": [..]`: these values are removed
//!   from the list `<field>` (after the patch's own `<field>` is merged in).
//! - `"$setElementOrder/<field>": [..]`: the order of the merged list
//!   `<field>`: its elements in the listed order, the elements only the
//!   object had put among them by their old positions (upstream's
//!   `normalizeElementOrder`). The patch's `<field>` elements must appear in
//!   it, in the same order.
//!
//! Without `$setElementOrder`, a merged list keeps its elements in place and
//! orders the patch's elements as the patch does; an element that is new
//! goes before the old elements that follow no element of the patch. So,
//! as upstream, adding `c` to `[a, b]` gives `[c, a, b]`, while `[b, c]`
//! added to `[a, b]` gives `[a, b, c]`. (`kubectl apply` always sends
//! `$setElementOrder`, so its lists come out in the manifest's order.)
//!
//! Where this differs from upstream, on purpose:
//!
//! - `"$patch": "delete"` removes the key; upstream leaves `{}` there (which
//!   decoding into the Go type then mostly drops). At the top level it is
//!   refused rather than producing an empty object.
//! - `"$patch": "merge"` is accepted anywhere; upstream refuses it.
//! - Directives never reach the result: a patch value that has no
//!   counterpart in the object is merged into an empty one, so its own
//!   directives are applied (upstream copies it as is and relies on decoding
//!   into the Go type to drop them). An unknown `$` key is refused.
//! - `$deleteFromPrimitiveList/<field>` for a field the object lacks does
//!   nothing (upstream sets the field to the values to delete).
//! - `$setElementOrder` on a list that is replaced whole is refused (it means
//!   the client believes the list merges, and replacing it would drop the
//!   elements it did not send).

use serde_json::{Map, Value};

/// The three patch types of a Kubernetes `PATCH` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/merge-patch+json` (RFC 7386)
    Merge,
    /// `application/json-patch+json` (RFC 6902)
    Json,
}

impl PatchKind {
    /// The kind a `Content-Type` header names, parameters such as
    /// `;charset=utf-8` ignored. `None` for any other media type (the caller
    /// answers 415 Unsupported Media Type).
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PatchKind::Strategic => "strategic merge patch",
            PatchKind::Merge => "JSON merge patch",
            PatchKind::Json => "JSON patch",
        }
    }
}

/// Why a patch could not be applied. Every variant is the client's fault:
/// [`PatchError::TestFailed`] and [`PatchError::OperationFailed`] suit a 422
/// (the patch is well formed but does not fit the object), the others a 400.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body does not parse as JSON.
    #[error("the patch is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON of the wrong shape for its kind (a JSON patch is a
    /// list, the two merge patches are objects).
    #[error("a {kind} must be a JSON {expected}, not {found}")]
    WrongShape {
        kind: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A strategic merge patch that cannot be applied: `path` is the field
    /// path in the patch (`spec.containers[name=app].env[1]`).
    #[error("invalid patch at {path}: {why}")]
    Invalid { path: String, why: String },
    /// Element `index` of a JSON patch is not an operation.
    #[error("JSON patch operation {index} is not valid: {why}")]
    BadOperation { index: usize, why: String },
    /// The `test` operation `index` found another value at `path`.
    #[error("JSON patch operation {index} failed: test at {path} did not match")]
    TestFailed { index: usize, path: String },
    /// Operation `index` (`op` at the pointer `path`) could not be applied.
    #[error("JSON patch operation {index} ({op} at {path}) failed: {why}")]
    OperationFailed {
        index: usize,
        op: &'static str,
        path: String,
        why: String,
    },
}

/// Applies `patch`, a body of the given kind, to `target` (a v1 Pod as JSON)
/// and returns the patched Pod. `target` is not changed.
pub fn apply(kind: PatchKind, target: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(patch).map_err(PatchError::NotJson)?;
    let out = match kind {
        PatchKind::Strategic => strategic(target, patch)?,
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(wrong_shape(kind, "object", &patch));
            }
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &patch);
            doc
        }
        PatchKind::Json => json(target, patch)?,
    };
    if !out.is_object() {
        return Err(PatchError::Invalid {
            path: TOP.into(),
            why: format!("the patched object is {}, not an object", type_name(&out)),
        });
    }
    Ok(out)
}

fn wrong_shape(kind: PatchKind, expected: &'static str, found: &Value) -> PatchError {
    PatchError::WrongShape {
        kind: kind.name(),
        expected,
        found: type_name(found),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------- JSON patch

fn json(target: &Value, patch: Value) -> Result<Value, PatchError> {
    let Value::Array(items) = patch else {
        return Err(wrong_shape(PatchKind::Json, "list", &patch));
    };
    let ops = items
        .into_iter()
        .enumerate()
        .map(|(index, op)| {
            serde_json::from_value::<json_patch::PatchOperation>(op).map_err(|e| {
                PatchError::BadOperation {
                    index,
                    why: e.to_string(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| {
        let index = e.operation;
        let path = e.path.to_string();
        match e.kind {
            json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed { index, path },
            kind => {
                let (op, from) = match ops.get(index) {
                    Some(json_patch::PatchOperation::Add(_)) => ("add", None),
                    Some(json_patch::PatchOperation::Remove(_)) => ("remove", None),
                    Some(json_patch::PatchOperation::Replace(_)) => ("replace", None),
                    Some(json_patch::PatchOperation::Move(m)) => ("move", Some(&m.from)),
                    Some(json_patch::PatchOperation::Copy(c)) => ("copy", Some(&c.from)),
                    Some(json_patch::PatchOperation::Test(_)) => ("test", None),
                    None => ("operation", None),
                };
                let why = match (&kind, from) {
                    (json_patch::PatchErrorKind::InvalidFromPointer, Some(from)) => {
                        format!("nothing at \"from\" {from}")
                    }
                    (json_patch::PatchErrorKind::InvalidPointer, _) => {
                        "the path does not exist (or its parent does not, or the index is out of range)"
                            .into()
                    }
                    _ => kind.to_string(),
                };
                PatchError::OperationFailed {
                    index,
                    op,
                    path,
                    why,
                }
            }
        }
    })?;
    Ok(doc)
}

// ---------------------------------------------------- strategic merge patch

/// How a list field of a Pod is patched by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// No `patchStrategy` tag: the patch's list replaces the object's.
    Replace,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: elements (objects) with
    /// the same key merge, others are added.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a key: a list of values, unioned.
    MergePrimitives,
}

/// The lists of a v1 Pod that a strategic merge patch merges, by field path
/// (field names joined by `.`, list elements not named: the `env` of every
/// container is `spec.containers.env`), with the merge key of their
/// `patchMergeKey` tag. Taken from the `patchStrategy:"merge"` tags of
/// `ObjectMeta`, `PodSpec`, `Container`, `EphemeralContainerCommon` and
/// `PodStatus` (`merge,retainKeys` counts as merge). Every other list is
/// replaced whole; notably untagged (replaced) are `spec.tolerations`,
/// `spec.readinessGates`, `spec.securityContext.sysctls`, `envFrom`,
/// `resizePolicy`, `resources.claims` and the `status` container statuses.
const LIST_STRATEGIES: &[(&str, ListStrategy)] = {
    use ListStrategy::{MergeByKey as Key, MergePrimitives as Values};
    &[
        // ObjectMeta
        ("metadata.finalizers", Values),
        ("metadata.ownerReferences", Key("uid")),
        // PodSpec
        ("spec.volumes", Key("name")),
        ("spec.containers", Key("name")),
        ("spec.initContainers", Key("name")),
        ("spec.ephemeralContainers", Key("name")),
        ("spec.imagePullSecrets", Key("name")),
        ("spec.hostAliases", Key("ip")),
        ("spec.topologySpreadConstraints", Key("topologyKey")),
        ("spec.schedulingGates", Key("name")),
        ("spec.resourceClaims", Key("name")),
        // Container (and EphemeralContainerCommon, which has the same tags)
        ("spec.containers.ports", Key("containerPort")),
        ("spec.containers.env", Key("name")),
        ("spec.containers.volumeMounts", Key("mountPath")),
        ("spec.containers.volumeDevices", Key("devicePath")),
        ("spec.initContainers.ports", Key("containerPort")),
        ("spec.initContainers.env", Key("name")),
        ("spec.initContainers.volumeMounts", Key("mountPath")),
        ("spec.initContainers.volumeDevices", Key("devicePath")),
        ("spec.ephemeralContainers.ports", Key("containerPort")),
        ("spec.ephemeralContainers.env", Key("name")),
        ("spec.ephemeralContainers.volumeMounts", Key("mountPath")),
        ("spec.ephemeralContainers.volumeDevices", Key("devicePath")),
        // PodStatus
        ("status.conditions", Key("type")),
        ("status.podIPs", Key("ip")),
        ("status.hostIPs", Key("ip")),
        ("status.resourceClaimStatuses", Key("name")),
    ]
};

fn list_strategy(path: &str) -> ListStrategy {
    LIST_STRATEGIES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(ListStrategy::Replace, |(_, s)| *s)
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";
const TOP: &str = "(top level)";

/// Where the merge is: `schema` finds the strategy in [`LIST_STRATEGIES`],
/// `shown` goes in error messages.
#[derive(Debug, Clone)]
struct At {
    schema: String,
    shown: String,
}

impl At {
    fn root() -> At {
        At {
            schema: String::new(),
            shown: String::new(),
        }
    }

    fn field(&self, name: &str) -> At {
        let join = |s: &str| {
            if s.is_empty() {
                name.to_string()
            } else {
                format!("{s}.{name}")
            }
        };
        At {
            schema: join(&self.schema),
            shown: join(&self.shown),
        }
    }

    /// Element `index` of this list (as numbered in the patch).
    fn index(&self, index: usize) -> At {
        At {
            schema: self.schema.clone(),
            shown: format!("{}[{index}]", self.shown),
        }
    }

    /// The element whose merge key `key` is `value`.
    fn keyed(&self, key: &str, value: &Value) -> At {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        At {
            schema: self.schema.clone(),
            shown: format!("{}[{key}={value}]", self.shown),
        }
    }

    fn invalid(&self, why: impl Into<String>) -> PatchError {
        PatchError::Invalid {
            path: if self.shown.is_empty() {
                TOP.into()
            } else {
                self.shown.clone()
            },
            why: why.into(),
        }
    }
}

fn strategic(target: &Value, patch: Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(wrong_shape(PatchKind::Strategic, "object", &patch));
    };
    let root = At::root();
    let Value::Object(original) = target.clone() else {
        return Err(root.invalid(format!(
            "the object to patch is {}, not an object",
            type_name(target)
        )));
    };
    match merge_map(original, patch, &root)? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(root.invalid("\"$patch\": \"delete\" cannot delete the whole object")),
    }
}

/// Equality of JSON values where `80` and `80.0` are the same number (Go
/// decodes both to the same `float64`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Merges the patch object into the object. `None`: the patch says
/// `"$patch": "delete"`, the object is to go.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    at: &At,
) -> Result<Option<Map<String, Value>>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => return merge_map(Map::new(), patch, at),
            Some("delete") => return Ok(None),
            Some("merge") => {}
            _ => {
                return Err(at.invalid(format!(
                    "unknown \"$patch\" directive {directive} (replace, delete or merge)"
                )))
            }
        }
    }

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, retain, at)?;
    }

    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    let mut fields = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            orders.push((directive_field(field, SET_ORDER, at)?, value));
        } else if let Some(field) = key.strip_prefix(DELETE_FROM) {
            deletions.push((directive_field(field, DELETE_FROM, at)?, value));
        } else if key.starts_with('$') {
            return Err(at.invalid(format!("unknown directive {key:?}")));
        } else {
            fields.push((key, value));
        }
    }

    // A list with an order directive is merged with it, first.
    for (field, order) in orders {
        let here = at.field(&field);
        let position = fields.iter().position(|(k, _)| *k == field);
        let listed = position.map(|i| fields.remove(i).1);
        if let Some(list) = set_element_order(original.get(&field), listed, order, &here)? {
            original.insert(field, Value::Array(list));
        }
    }

    for (key, value) in fields {
        let here = at.field(&key);
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(o, p, &here)?.map(Value::Object)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_field(o, p, &here)?))
            }
            (_, value) => fresh(value, &here)?,
        };
        if let Some(merged) = merged {
            original.insert(key, merged);
        }
    }

    for (field, values) in deletions {
        let here = at.field(&field);
        let Value::Array(values) = values else {
            return Err(here.invalid(format!(
                "{DELETE_FROM}{field} must be a list of the values to remove"
            )));
        };
        if let Some(Value::Array(list)) = original.get_mut(&field) {
            list.retain(|v| !values.iter().any(|d| same(d, v)));
        }
    }

    Ok(Some(original))
}

fn directive_field(field: &str, prefix: &str, at: &At) -> Result<String, PatchError> {
    if field.is_empty() || field.starts_with('$') {
        return Err(at.invalid(format!("{prefix} must be followed by a field name")));
    }
    Ok(field.to_string())
}

/// `$retainKeys`: drops the object's keys that are not listed, after checking
/// that the patch sets none that is not.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: Value,
    at: &At,
) -> Result<(), PatchError> {
    let keys = match &retain {
        Value::Array(keys) => keys.iter().map(Value::as_str).collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let Some(keys) = keys else {
        return Err(at.invalid("$retainKeys must be a list of field names"));
    };
    for (key, value) in patch {
        if value.is_null() || key.starts_with(SET_ORDER) || key.starts_with(DELETE_FROM) {
            continue;
        }
        if !keys.contains(&key.as_str()) {
            return Err(at.invalid(format!(
                "the patch sets {key:?}, which its $retainKeys does not list"
            )));
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// A patch value with nothing to merge into: its directives are applied
/// against an empty object or list. `None`: it deletes itself.
fn fresh(value: Value, at: &At) -> Result<Option<Value>, PatchError> {
    Ok(match value {
        Value::Object(p) => merge_map(Map::new(), p, at)?.map(Value::Object),
        Value::Array(p) => Some(Value::Array(merge_field(Vec::new(), p, at)?)),
        other => Some(other),
    })
}

/// Merges the patch's list into the object's list at `at`, by the field's
/// strategy.
fn merge_field(original: Vec<Value>, patch: Vec<Value>, at: &At) -> Result<Vec<Value>, PatchError> {
    match list_strategy(&at.schema) {
        ListStrategy::Replace => {
            let mut out = Vec::with_capacity(patch.len());
            for (i, item) in patch.into_iter().enumerate() {
                if let Some(item) = fresh(item, &at.index(i))? {
                    out.push(item);
                }
            }
            Ok(out)
        }
        ListStrategy::MergeByKey(key) => merge_list(original, patch, Some(key), at),
        ListStrategy::MergePrimitives => merge_list(original, patch, None, at),
    }
}

/// What identifies an element of a merged list: its merge key's value, or
/// the element itself in a list of values.
fn identity<'a>(item: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn position(ids: &[Value], id: &Value) -> Option<usize> {
    ids.iter().position(|x| same(x, id))
}

/// `mergeSlice`: merges a list with a merge strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&'static str>,
    at: &At,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let all = || original.iter().chain(patch.iter());
    if all().any(Value::is_array) {
        return Err(at.invalid("lists of lists cannot be merged"));
    }
    let objects = all().filter(|v| v.is_object()).count();
    if objects == 0 {
        return merge_values(original, patch);
    }
    if objects != original.len() + patch.len() {
        return Err(at.invalid("a merged list cannot mix objects and other values"));
    }
    let Some(key) = key else {
        return Err(at.invalid("this list has no merge key, so its objects cannot be merged"));
    };

    // Elements with a `$patch` directive first.
    let mut base = original;
    let mut elements = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (i, item) in patch.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            continue; // all are objects, checked above
        };
        let here = at.index(i);
        let Some(directive) = item.remove(DIRECTIVE) else {
            elements.push((here, item));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = item.get(key).ok_or_else(|| no_merge_key(&here, key))?;
                base.retain(|o| !o.get(key).is_some_and(|v| same(v, id)));
            }
            Some("replace") => replace = true,
            Some("merge") => elements.push((here, item)),
            _ => {
                return Err(here.invalid(format!(
                    "unknown \"$patch\" directive {directive} (replace, delete or merge)"
                )))
            }
        }
    }

    if replace {
        let mut out = Vec::with_capacity(elements.len());
        for (here, item) in elements {
            let id = item.get(key).ok_or_else(|| no_merge_key(&here, key))?;
            let here = at.keyed(key, id);
            if let Some(item) = merge_map(Map::new(), item, &here)? {
                out.push(Value::Object(item));
            }
        }
        return Ok(out);
    }

    let server_ids: Vec<Value> = base
        .iter()
        .filter_map(|v| identity(v, Some(key)).cloned())
        .collect();
    let mut patch_ids = Vec::with_capacity(elements.len());
    let mut merged = base;
    for (here, item) in elements {
        let id = item
            .get(key)
            .ok_or_else(|| no_merge_key(&here, key))?
            .clone();
        let here = at.keyed(key, &id);
        let found = merged
            .iter()
            .position(|o| o.get(key).is_some_and(|v| same(v, &id)));
        match found {
            Some(i) => match std::mem::take(&mut merged[i]) {
                Value::Object(o) => match merge_map(o, item, &here)? {
                    Some(m) => merged[i] = Value::Object(m),
                    None => {
                        merged.remove(i);
                    }
                },
                other => merged[i] = other,
            },
            None => {
                if let Some(m) = merge_map(Map::new(), item, &here)? {
                    merged.push(Value::Object(m));
                }
            }
        }
        patch_ids.push(id);
    }
    normalize_order(merged, &patch_ids, &server_ids, Some(key), at)
}

fn no_merge_key(at: &At, key: &str) -> PatchError {
    at.invalid(format!("the list element has no merge key {key:?}"))
}

/// The union of two lists of values: each value once, the patch's order
/// imposed on its own values, as [`normalize_order`] places them.
fn merge_values(original: Vec<Value>, patch: Vec<Value>) -> Result<Vec<Value>, PatchError> {
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.iter().chain(patch.iter()) {
        if !merged.iter().any(|m| same(m, v)) {
            merged.push(v.clone());
        }
    }
    // A value is its own identity: this finds no element without one.
    normalize_order(merged, &patch, &original, None, &At::root())
}

/// Upstream's `normalizeElementOrder`: the elements of `merged` that
/// `patch_order` names come in that order; the others (the object's own)
/// keep the order they had in `server_order`; the two sequences are then
/// interleaved: an element of the object goes before an element of the
/// patch only if both were in the object and it came first there.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    at: &At,
) -> Result<Vec<Value>, PatchError> {
    let mut from_patch = Vec::new();
    let mut server_only = Vec::new();
    for (i, item) in merged.into_iter().enumerate() {
        let id = match identity(&item, key) {
            Some(id) => id,
            None => return Err(no_merge_key(&at.index(i), key.unwrap_or_default())),
        };
        let in_server = position(server_order, id);
        match position(patch_order, id) {
            Some(p) => from_patch.push((p, in_server, item)),
            None => server_only.push((in_server.unwrap_or(usize::MAX), item)),
        }
    }
    from_patch.sort_by_key(|(p, _, _)| *p);
    server_only.sort_by_key(|(s, _)| *s);

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((_, r, _))) => matches!(r, Some(r) if *l < *r),
        };
        let next = if take_left {
            left.next().map(|(_, item)| item)
        } else {
            right.next().map(|(_, _, item)| item)
        };
        out.extend(next);
    }
    Ok(out)
}

/// `$setElementOrder/<field>`: merges the patch's list (if it has one) into
/// the object's and orders the result by `order`. `None`: neither has the list.
fn set_element_order(
    original: Option<&Value>,
    patch: Option<Value>,
    order: Value,
    at: &At,
) -> Result<Option<Vec<Value>>, PatchError> {
    let key = match list_strategy(&at.schema) {
        ListStrategy::MergeByKey(key) => Some(key),
        ListStrategy::MergePrimitives => None,
        ListStrategy::Replace => {
            return Err(at.invalid(
                "$setElementOrder applies to merged lists, and this list is replaced whole",
            ))
        }
    };
    let Value::Array(order) = order else {
        return Err(at.invalid("$setElementOrder must be a list"));
    };
    let mut order_ids = Vec::with_capacity(order.len());
    for (i, item) in order.iter().enumerate() {
        let id = identity(item, key).ok_or_else(|| {
            at.invalid(format!(
                "$setElementOrder element {i} has no merge key {:?}",
                key.unwrap_or_default()
            ))
        })?;
        order_ids.push(id.clone());
    }
    let original = match original {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(list.clone()),
        Some(other) => {
            return Err(at.invalid(format!(
                "the object has {} here, not a list",
                type_name(other)
            )))
        }
    };
    let patch = match patch {
        None => None,
        Some(Value::Array(list)) => Some(list),
        Some(other) => {
            return Err(at.invalid(format!(
                "the patch has {} next to its $setElementOrder, not a list",
                type_name(&other)
            )))
        }
    };
    if let Some(patch) = &patch {
        check_patch_order(patch, &order_ids, key, at)?;
    }
    let server_ids: Vec<Value> = original
        .iter()
        .flatten()
        .filter_map(|v| identity(v, key).cloned())
        .collect();
    let merged = match (original, patch) {
        (None, None) => return Ok(None),
        (Some(original), None) => original,
        (original, Some(patch)) => merge_list(original.unwrap_or_default(), patch, key, at)?,
    };
    normalize_order(merged, &order_ids, &server_ids, key, at).map(Some)
}

/// Upstream's `validatePatchWithSetOrderList`: the patch's elements (less
/// those with a `$patch` directive) must all be in the order list, in its
/// order.
fn check_patch_order(
    patch: &[Value],
    order_ids: &[Value],
    key: Option<&str>,
    at: &At,
) -> Result<(), PatchError> {
    let mut next = 0;
    for (i, item) in patch.iter().enumerate() {
        if item.get(DIRECTIVE).is_some() {
            continue;
        }
        let id = identity(item, key)
            .ok_or_else(|| no_merge_key(&at.index(i), key.unwrap_or_default()))?;
        match order_ids[next..].iter().position(|o| same(o, id)) {
            Some(p) => next += p + 1,
            None => {
                return Err(at.invalid(format!(
                    "element {i} of the patch's list is missing from $setElementOrder, \
                     or comes there in another order"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: &Value, patch: Value) -> Result<Value, PatchError> {
        apply(PatchKind::Strategic, target, patch.to_string().as_bytes())
    }

    fn invalid_at(err: PatchError) -> (String, String) {
        match err {
            PatchError::Invalid { path, why } => (path, why),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// No key anywhere in `v` starts with `$`.
    fn assert_no_directives(v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(!k.starts_with('$'), "directive {k} left in the result");
                    assert_no_directives(v);
                }
            }
            Value::Array(a) => a.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            },
            "spec": {
                "restartPolicy": "Always",
                "containers": [{
                    "name": "app",
                    "image": "old",
                    "args": ["--a", "--b"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]
                }],
                "tolerations": [{"key": "k1", "operator": "Exists"}]
            }
        })
    }

    #[test]
    fn content_types_name_their_kind() {
        let cases = [
            (
                "application/strategic-merge-patch+json",
                Some(PatchKind::Strategic),
            ),
            ("application/merge-patch+json", Some(PatchKind::Merge)),
            ("application/json-patch+json", Some(PatchKind::Json)),
            (
                "application/json-patch+json; charset=utf-8",
                Some(PatchKind::Json),
            ),
            (
                "Application/Merge-Patch+JSON;charset=UTF-8",
                Some(PatchKind::Merge),
            ),
            ("application/json", None),
            ("application/apply-patch+yaml", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchKind::from_content_type(ct), want, "{ct:?}");
        }
    }

    #[test]
    fn kubectl_apply_changes_the_image_and_drops_an_env_var() {
        let last = r#"{"apiVersion":"v1","kind":"Pod"}"#;
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "image": "new",
                    "name": "app"
                }]
            }
        });
        let got = smp(&pod(), patch).unwrap();
        let mut want = pod();
        want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!(last);
        want["spec"]["containers"][0]["image"] = json!("new");
        want["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        assert_eq!(got, want);
    }

    #[test]
    fn kubectl_apply_inserts_an_env_var_and_a_port_where_the_manifest_has_them() {
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}, {"name": "B"}],
                "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                "env": [{"name": "C", "value": "3"}],
                "ports": [{"containerPort": 443}],
                "name": "app"
            }]
        }});
        let got = smp(&pod(), patch).unwrap();
        let app = &got["spec"]["containers"][0];
        assert_eq!(
            app["env"],
            json!([
                {"name": "A", "value": "1"},
                {"name": "C", "value": "3"},
                {"name": "B", "value": "2"}
            ])
        );
        assert_eq!(
            app["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}])
        );
        assert_eq!(app["image"], "old");
    }

    #[test]
    fn maps_merge_and_null_deletes_a_key() {
        let patch = json!({"metadata": {"labels": {"tier": null, "new": "x", "absent": null}}});
        let got = smp(&pod(), patch).unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"app": "web", "new": "x"}));
        assert_eq!(got["metadata"]["name"], "web");
    }

    #[test]
    fn patch_replace_in_a_map_replaces_it() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
        let got = smp(&pod(), patch).unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"only": "this"}));
        assert_eq!(
            got["metadata"]["annotations"],
            pod()["metadata"]["annotations"]
        );
    }

    #[test]
    fn patch_delete_in_a_map_deletes_it() {
        let patch = json!({"metadata": {"labels": {"$patch": "delete"}}});
        let got = smp(&pod(), patch).unwrap();
        assert!(got["metadata"].get("labels").is_none(), "{got}");
        assert_eq!(got["metadata"]["name"], "web");
    }

    #[test]
    fn patch_delete_of_the_whole_object_is_refused() {
        let (path, why) = invalid_at(smp(&pod(), json!({"$patch": "delete"})).unwrap_err());
        assert_eq!(path, TOP);
        assert!(why.contains("whole object"), "{why}");
    }

    #[test]
    fn patch_merge_is_the_default() {
        let with = json!({"metadata": {"$patch": "merge", "labels": {"x": "y"}},
            "spec": {"containers": [{"$patch": "merge", "name": "app", "image": "i2"}]}});
        let without = json!({"metadata": {"labels": {"x": "y"}},
            "spec": {"containers": [{"name": "app", "image": "i2"}]}});
        let got = smp(&pod(), with).unwrap();
        assert_eq!(got, smp(&pod(), without).unwrap());
        assert_eq!(got["metadata"]["labels"]["x"], "y");
        assert_eq!(got["metadata"]["labels"]["app"], "web");
        assert_no_directives(&got);
    }

    #[test]
    fn patch_replace_in_a_list_element_replaces_the_list() {
        let patch = json!({"spec": {"containers": [{"name": "app", "env": [
            {"$patch": "replace"},
            {"name": "C", "value": "3"}
        ]}]}});
        let got = smp(&pod(), patch).unwrap();
        assert_eq!(
            got["spec"]["containers"][0]["env"],
            json!([{"name": "C", "value": "3"}])
        );
        assert_eq!(got["spec"]["containers"][0]["image"], "old");
    }

    #[test]
    fn patch_delete_in_a_list_element_deletes_that_element() {
        let patch = json!({"spec": {"containers": [{"name": "app", "env": [
            {"$patch": "delete", "name": "A"},
            {"$patch": "delete", "name": "not-there"}
        ]}]}});
        let got = smp(&pod(), patch).unwrap();
        assert_eq!(
            got["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn unknown_patch_directive_is_an_error() {
        let err = smp(&pod(), json!({"metadata": {"$patch": "frobnicate"}})).unwrap_err();
        let (path, why) = invalid_at(err);
        assert_eq!(path, "metadata");
        assert!(why.contains("frobnicate"), "{why}");
        let err = smp(&pod(), json!({"spec": {"$frob": 1}})).unwrap_err();
        assert_eq!(invalid_at(err).0, "spec");
    }

    #[test]
    fn retain_keys_clears_the_keys_not_listed() {
        // kubectl apply switching a volume from emptyDir to configMap.
        let mut target = pod();
        target["spec"]["volumes"] = json!([
            {"name": "v", "emptyDir": {}},
            {"name": "w", "emptyDir": {}}
        ]);
        let patch = json!({"spec": {"volumes": [{
            "$retainKeys": ["configMap", "name"],
            "configMap": {"name": "cm"},
            "name": "v"
        }]}});
        let got = smp(&target, patch).unwrap();
        assert_eq!(
            got["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}])
        );
    }

    #[test]
    fn retain_keys_must_list_what_the_patch_sets() {
        let patch = json!({"spec": {"volumes": [{
            "$retainKeys": ["name"],
            "configMap": {"name": "cm"},
            "name": "v"
        }]}});
        let (path, why) = invalid_at(smp(&pod(), patch).unwrap_err());
        assert_eq!(path, "spec.volumes[name=v]");
        assert!(why.contains("configMap"), "{why}");
    }

    #[test]
    fn delete_from_primitive_list_removes_those_values() {
        let mut target = pod();
        target["metadata"]["finalizers"] = json!(["a", "b", "c"]);
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}});
        let got = smp(&target, patch).unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn kubectl_apply_replacing_a_finalizer() {
        // What kubectl sends for finalizers [a, b] -> [a, c].
        let mut target = pod();
        target["metadata"]["finalizers"] = json!(["a", "b"]);
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "c"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"]
        }});
        let got = smp(&target, patch).unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let mut target = pod();
        target["spec"]["containers"] = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]);
        // Reorder only: no `containers` list in the patch.
        let patch = json!({"spec": {"$setElementOrder/containers": [
            {"name": "c"}, {"name": "b"}, {"name": "a"}
        ]}});
        let got = smp(&target, patch).unwrap();
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
        );
        // A new element placed where the order says.
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "new", "image": "n"}]
        }});
        let got = smp(&target, patch).unwrap();
        let names: Vec<_> = got["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "new", "b", "c"]);
        assert_eq!(got["spec"]["containers"][1]["image"], "n");
    }

    #[test]
    fn set_element_order_keeps_server_only_elements_by_their_old_place() {
        // The live object has `x` that the client never knew of.
        let mut target = pod();
        target["spec"]["containers"] =
            json!([{"name": "a"}, {"name": "x"}, {"name": "b"}, {"name": "c"}]);
        let patch = json!({"spec": {"$setElementOrder/containers": [
            {"name": "c"}, {"name": "a"}, {"name": "b"}
        ]}});
        let got = smp(&target, patch).unwrap();
        let names: Vec<_> = got["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // The listed ones in the listed order; x, compared with the next
        // listed one (c, old index 3), was before it (old index 1), so it
        // goes first.
        assert_eq!(names, ["x", "c", "a", "b"]);
        // Compared with a listed element that was before it, it waits.
        let patch = json!({"spec": {"$setElementOrder/containers": [
            {"name": "a"}, {"name": "b"}, {"name": "c"}
        ]}});
        let got = smp(&target, patch).unwrap();
        let names: Vec<_> = got["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "x", "b", "c"]);
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"name": "other", "image": "i"}]
        }});
        let (path, why) = invalid_at(smp(&pod(), patch).unwrap_err());
        assert_eq!(path, "spec.containers");
        assert!(why.contains("$setElementOrder"), "{why}");
    }

    #[test]
    fn set_element_order_on_a_replaced_list_is_refused() {
        let patch = json!({"spec": {"$setElementOrder/tolerations": [{"key": "k1"}]}});
        let (path, _) = invalid_at(smp(&pod(), patch).unwrap_err());
        assert_eq!(path, "spec.tolerations");
    }

    /// A Pod with `list` at `path`, every `containers`-like step on the way
    /// being a list holding one container named `c`.
    fn nest(path: &str, list: Value) -> Value {
        let mut steps: Vec<&str> = path.split('.').collect();
        let last = steps.pop().unwrap();
        let mut v = json!({ last: list });
        for step in steps.into_iter().rev() {
            v = if step.ends_with("ontainers") {
                v["name"] = json!("c");
                json!({ step: [v] })
            } else {
                json!({ step: v })
            };
        }
        v
    }

    #[test]
    fn every_merge_key_of_the_table_merges_its_list() {
        let cases: &[(&str, &str, Value, Value)] = &[
            ("metadata.ownerReferences", "uid", json!("u1"), json!("u2")),
            ("spec.volumes", "name", json!("v1"), json!("v2")),
            ("spec.containers", "name", json!("c1"), json!("c2")),
            ("spec.initContainers", "name", json!("c1"), json!("c2")),
            ("spec.ephemeralContainers", "name", json!("c1"), json!("c2")),
            ("spec.imagePullSecrets", "name", json!("s1"), json!("s2")),
            (
                "spec.hostAliases",
                "ip",
                json!("10.0.0.1"),
                json!("10.0.0.2"),
            ),
            (
                "spec.topologySpreadConstraints",
                "topologyKey",
                json!("zone"),
                json!("host"),
            ),
            ("spec.schedulingGates", "name", json!("g1"), json!("g2")),
            ("spec.resourceClaims", "name", json!("r1"), json!("r2")),
            (
                "status.conditions",
                "type",
                json!("Ready"),
                json!("Initialized"),
            ),
            ("status.podIPs", "ip", json!("10.1.0.1"), json!("fd00::1")),
            ("status.hostIPs", "ip", json!("10.2.0.1"), json!("fd00::2")),
            (
                "status.resourceClaimStatuses",
                "name",
                json!("r1"),
                json!("r2"),
            ),
        ];
        let mut cases: Vec<(String, &str, Value, Value)> = cases
            .iter()
            .map(|(p, k, a, b)| (p.to_string(), *k, a.clone(), b.clone()))
            .collect();
        for c in ["containers", "initContainers", "ephemeralContainers"] {
            for (field, key, a, b) in [
                ("ports", "containerPort", json!(80), json!(443)),
                ("env", "name", json!("A"), json!("B")),
                ("volumeMounts", "mountPath", json!("/a"), json!("/b")),
                (
                    "volumeDevices",
                    "devicePath",
                    json!("/dev/a"),
                    json!("/dev/b"),
                ),
            ] {
                cases.push((format!("spec.{c}.{field}"), key, a, b));
            }
        }
        assert_eq!(cases.len(), LIST_STRATEGIES.len() - 1, "all but finalizers");
        for (path, key, a, b) in cases {
            let path = path.as_str();
            let target = nest(
                path,
                json!([{key: a, "old": 1, "keep": 1}, {key: b, "old": 2}]),
            );
            let patch = nest(path, json!([{key: a, "old": null, "new": 1}]));
            let got = smp(&target, patch).unwrap_or_else(|e| panic!("{path}: {e}"));
            let want = nest(
                path,
                json!([{key: a, "keep": 1, "new": 1}, {key: b, "old": 2}]),
            );
            assert_eq!(got, want, "{path} merges by {key}");
        }
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        for (path, old, new) in [
            (
                "spec.tolerations",
                json!([{"key": "a"}, {"key": "b"}]),
                json!([{"key": "c"}]),
            ),
            (
                "spec.readinessGates",
                json!([{"conditionType": "a"}]),
                json!([{"conditionType": "b"}]),
            ),
            (
                "spec.securityContext.sysctls",
                json!([{"name": "a", "value": "1"}]),
                json!([{"name": "b", "value": "2"}]),
            ),
            (
                "spec.containers.args",
                json!(["--a", "--b"]),
                json!(["--c"]),
            ),
            (
                "spec.containers.command",
                json!(["sh"]),
                json!(["bash", "-c"]),
            ),
            (
                "spec.containers.envFrom",
                json!([{"prefix": "A"}]),
                json!([{"prefix": "B"}]),
            ),
            (
                "status.containerStatuses",
                json!([{"name": "a"}]),
                json!([{"name": "b"}]),
            ),
        ] {
            let got = smp(&nest(path, old), nest(path, new.clone())).unwrap();
            assert_eq!(got, nest(path, new), "{path} is replaced");
        }
    }

    #[test]
    fn finalizers_are_unioned() {
        let mut target = pod();
        target["metadata"]["finalizers"] = json!(["a", "b"]);
        let got = smp(
            &target,
            json!({"metadata": {"finalizers": ["b", "c", "c"]}}),
        )
        .unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn new_elements_go_before_unanchored_old_ones_as_upstream() {
        // apimachinery's normalizeElementOrder: with no $setElementOrder, an
        // element the object lacks is placed before the object's elements
        // that follow no element of the patch.
        let mut target = pod();
        target["metadata"]["finalizers"] = json!(["a", "b"]);
        let got = smp(&target, json!({"metadata": {"finalizers": ["c"]}})).unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let patch = json!({"spec": {"containers": [{"name": "sidecar", "image": "s"}]}});
        let got = smp(&pod(), patch).unwrap();
        assert_eq!(got["spec"]["containers"][0]["name"], "sidecar");
        assert_eq!(got["spec"]["containers"][1], pod()["spec"]["containers"][0]);
    }

    #[test]
    fn element_without_merge_key_is_an_error() {
        let patch = json!({"spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": "x"},
            {"value": "no name"}
        ]}]}});
        let (path, why) = invalid_at(smp(&pod(), patch).unwrap_err());
        assert_eq!(path, "spec.containers[name=app].env[1]");
        assert!(why.contains("\"name\""), "{why}");
        let patch = json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}});
        assert_eq!(
            invalid_at(smp(&pod(), patch).unwrap_err()).0,
            "spec.containers[0]"
        );
    }

    #[test]
    fn directives_in_new_values_are_applied_not_copied() {
        let patch = json!({"spec": {
            "containers": [{
                "name": "new",
                "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}],
                "securityContext": {"$patch": "replace", "privileged": false},
                "resources": {"$retainKeys": ["limits"], "limits": {"cpu": "1"}}
            }],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}], "$patch": "merge"},
            "affinity": {"$patch": "delete"}
        }});
        let got = smp(&pod(), patch).unwrap();
        assert_no_directives(&got);
        let new = &got["spec"]["containers"][0];
        assert_eq!(new["name"], "new");
        assert_eq!(new["env"], json!([{"name": "X", "value": "1"}]));
        assert_eq!(new["securityContext"], json!({"privileged": false}));
        assert_eq!(got["spec"]["dnsConfig"]["options"][0]["value"], "2");
        assert!(got["spec"].get("affinity").is_none());
    }

    #[test]
    fn strategic_patch_must_be_a_json_object() {
        let err = apply(PatchKind::Strategic, &pod(), b"[1, 2]").unwrap_err();
        assert!(
            matches!(
                err,
                PatchError::WrongShape {
                    expected: "object",
                    found: "a list",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = apply(PatchKind::Strategic, &pod(), b"{\"spec\": ").unwrap_err();
        assert!(matches!(err, PatchError::NotJson(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("the patch is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn json_merge_patch_merges_maps_and_replaces_lists() {
        let patch = br#"{"metadata":{"labels":{"tier":null}},
            "spec":{"containers":[{"name":"only","image":"i"}]}}"#;
        let got = apply(PatchKind::Merge, &pod(), patch).unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
        assert_eq!(got["spec"]["restartPolicy"], "Always");
        let err = apply(PatchKind::Merge, &pod(), b"\"x\"").unwrap_err();
        assert!(matches!(err, PatchError::WrongShape { .. }), "{err:?}");
        let err = apply(PatchKind::Merge, &pod(), b"nope").unwrap_err();
        assert!(matches!(err, PatchError::NotJson(_)), "{err:?}");
    }

    #[test]
    fn json_patch_applies_every_operation() {
        let patch = json!([
            {"op": "test", "path": "/spec/containers/0/image", "value": "old"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "new"},
            {"op": "add", "path": "/metadata/labels/x", "value": "y"},
            {"op": "remove", "path": "/metadata/labels/tier"},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/spec/tolerations", "path": "/spec/moved"},
            {"op": "add", "path": "/spec/containers/0/args/-", "value": "--c"}
        ]);
        let got = apply(PatchKind::Json, &pod(), patch.to_string().as_bytes()).unwrap();
        assert_eq!(got["spec"]["containers"][0]["image"], "new");
        assert_eq!(
            got["metadata"]["labels"],
            json!({"app": "web", "x": "y", "copied": "web"})
        );
        assert!(got["spec"].get("tolerations").is_none());
        assert_eq!(got["spec"]["moved"], pod()["spec"]["tolerations"]);
        assert_eq!(
            got["spec"]["containers"][0]["args"],
            json!(["--a", "--b", "--c"])
        );
    }

    #[test]
    fn json_patch_failing_test_is_an_error() {
        let patch = json!([
            {"op": "replace", "path": "/spec/containers/0/image", "value": "new"},
            {"op": "test", "path": "/spec/containers/0/image", "value": "old"}
        ]);
        let err = apply(PatchKind::Json, &pod(), patch.to_string().as_bytes()).unwrap_err();
        match &err {
            PatchError::TestFailed { index, path } => {
                assert_eq!(*index, 1);
                assert_eq!(path, "/spec/containers/0/image");
            }
            other => panic!("expected TestFailed, got {other:?}"),
        }
        assert!(
            err.to_string().contains("/spec/containers/0/image"),
            "{err}"
        );
    }

    #[test]
    fn json_patch_errors_name_the_operation() {
        let patch = json!([{"op": "remove", "path": "/metadata/labels/none"}]);
        let err = apply(PatchKind::Json, &pod(), patch.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(&err, PatchError::OperationFailed { index: 0, op: "remove", path, .. } if path == "/metadata/labels/none"),
            "{err:?}"
        );
        let patch = json!([{"op": "add", "path": "/a", "value": 1}, {"op": "frob", "path": "/a"}]);
        let err = apply(PatchKind::Json, &pod(), patch.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, PatchError::BadOperation { index: 1, .. }),
            "{err:?}"
        );
        let err = apply(PatchKind::Json, &pod(), b"{}").unwrap_err();
        assert!(
            matches!(
                err,
                PatchError::WrongShape {
                    expected: "list",
                    ..
                }
            ),
            "{err:?}"
        );
        let patch = json!([{"op": "replace", "path": "", "value": [1]}]);
        let err = apply(PatchKind::Json, &pod(), patch.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, PatchError::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn the_target_is_left_unchanged() {
        let target = pod();
        let patch = json!({"spec": {"containers": [{"name": "app", "image": "new"}]}});
        smp(&target, patch).unwrap();
        assert_eq!(target, pod());
    }
}
