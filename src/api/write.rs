//! The API's writes to pods, through the manifest directory: files stay
//! the source of truth, and what `kubectl apply`, `replace`, `patch` and
//! `delete` do is a file written, rewritten or removed.
//!
//! - `POST` writes `<dir>/<namespace>_<name>.yaml`; 409 when the pod exists.
//! - `PUT` and `PATCH` rewrite the file that declares the pod, in its own
//!   format (YAML or JSON); 409 when that file declares other pods too,
//!   when the pod comes from `--manifest-url`, or on a stale
//!   `resourceVersion`. A patch applies to what the file holds (not to the
//!   defaulted pod the API shows), so the file keeps only what its
//!   author wrote; comments in a rewritten YAML file are not kept.
//! - `DELETE` removes the file; the pod is shown `Terminating` until its
//!   containers are gone, stopped within the grace period asked.
//!
//! Every write is validated exactly as the file would be (strict: unknown
//! or duplicate fields refused), written atomically (a temporary file,
//! then a rename), and answered once the source has read the directory
//! again and the Supervisor holds the result, so the next GET and watch
//! show it. Names that are not RFC 1123 are refused before any file is
//! touched. Writes run one at a time: each checks what exists, then writes.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use actix::{Addr, Recipient};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::kube::object::{self, ObjectError};
use super::kube::patch::{self, PatchError, PatchKind};
use super::kube::{self};
use super::node::{find_pod, pod_object};
use super::ApiState;
use crate::actors::source::{write_atomically, Locate, Located, ManifestSource, Rescan};
use crate::actors::supervisor::Deleting;
use crate::manifest::{parse_file_with, ManifestError};
use crate::settings::ManifestValidation;

/// How long a write waits for the source's rescan to be taken in before
/// answering anyway (the file is written; the pod shows up soon after).
const SETTLE: Duration = Duration::from_secs(10);

/// The patch types served, as `kubectl` sends them.
const PATCH_TYPES: &[&str] = &[
    "application/strategic-merge-patch+json",
    "application/merge-patch+json",
    "application/json-patch+json",
];

/// What the writes need: the directory and the actors that read it.
pub struct Manifests {
    pub dir: PathBuf,
    pub node_name: String,
    /// `--manifest-validation`: a write is validated as a file is.
    pub validation: ManifestValidation,
    pub source: Addr<ManifestSource>,
    pub supervisor: Recipient<Deleting>,
    /// One write at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Manifests {
    pub fn new(
        dir: PathBuf,
        node_name: String,
        validation: ManifestValidation,
        source: Addr<ManifestSource>,
        supervisor: Recipient<Deleting>,
    ) -> Self {
        Self {
            dir,
            node_name,
            validation,
            source,
            supervisor,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the directory again and waits until the Supervisor holds it.
    async fn rescan(&self) {
        if tokio::time::timeout(SETTLE, self.source.send(Rescan))
            .await
            .is_err()
        {
            tracing::warn!(after = ?SETTLE, "a write's rescan was not taken in in time");
        }
    }

    /// Writes `text` to `file` (atomically) and waits until the Supervisor
    /// holds what the directory now says; `done` (`created`, ...) is logged.
    async fn put(
        &self,
        file: &FsPath,
        text: String,
        done: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), Refusal> {
        write_file(file, text).await?;
        tracing::info!(pod = %format!("{namespace}/{name}"), file = %file.display(), "pod {done} through the API");
        self.rescan().await;
        Ok(())
    }

    /// The file declaring `namespace/name`, fit to be rewritten or removed
    /// as the pod's own: 409 when it declares other pods too, or when the
    /// pod is not from the directory at all.
    async fn own_file(&self, namespace: &str, name: &str) -> Result<Located, Refusal> {
        let asked = Locate {
            namespace: namespace.into(),
            name: name.into(),
        };
        let located = self.source.send(asked).await.map_err(|e| {
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                kube::status(
                    503,
                    "ServiceUnavailable",
                    format!("the manifest source: {e}"),
                ),
            )
        })?;
        let conflict =
            |why: String| answer(StatusCode::CONFLICT, kube::conflict("pods", name, &why));
        let Some(located) = located else {
            return Err(conflict(
                "the pod comes from --manifest-url, not from a file of the manifest directory; change it there".into(),
            ));
        };
        if located.pods_in_file > 1 || located.item_index.is_some() {
            return Err(conflict(format!(
                "{} declares {} pods (or a List); edit that file instead",
                located.file.display(),
                located.pods_in_file
            )));
        }
        Ok(located)
    }

    /// Checks `text` as the manifest `file` would be checked: one valid
    /// `v1` `Pod`, no unknown or duplicate field (when strict).
    fn validate(&self, file: &FsPath, text: &str, name: &str) -> Result<(), Refusal> {
        match parse_file_with(file, text, self.validation) {
            Ok(pods) if pods.len() == 1 => Ok(()),
            Ok(pods) => Err(bad_request(format!(
                "a single v1 Pod is expected; the body holds {}",
                pods.len()
            ))),
            Err(e) => Err(manifest_error(e, name)),
        }
    }
}

/// A refused write: the HTTP code and the `Status` body.
#[derive(Debug)]
struct Refusal(StatusCode, Value);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn answer(code: StatusCode, body: Value) -> Refusal {
    Refusal(code, body)
}

fn bad_request(message: String) -> Refusal {
    answer(StatusCode::BAD_REQUEST, kube::bad_request(message))
}

fn internal(message: String) -> Refusal {
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        kube::status(500, "InternalError", message),
    )
}

/// A refused manifest, as the API server words it: a body that does not
/// decode strictly is a 400, a pod that does not validate a 422 naming
/// the field.
fn manifest_error(e: ManifestError, name: &str) -> Refusal {
    match e {
        ManifestError::Invalid { error, .. } => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            kube::invalid("Pod", name, &error.path, &error.message),
        ),
        ManifestError::Syntax {
            line,
            column,
            message,
            ..
        } => bad_request(format!(
            "the body does not parse: line {line} column {column}: {message}"
        )),
        ManifestError::Document { message, .. } => bad_request(format!(
            "Pod in version \"v1\" cannot be handled as a Pod: {message}"
        )),
        other => bad_request(other.to_string()),
    }
}

fn object_error(e: ObjectError, name: &str) -> Refusal {
    match e {
        ObjectError::Invalid(f) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            kube::invalid("Pod", name, &f.path, &f.message),
        ),
        ObjectError::NotAPod(m) | ObjectError::Mismatch(m) => bad_request(m),
    }
}

fn name_error(namespace: &str, name: &str) -> Result<(), Refusal> {
    object::check_names(namespace, name)
        .map_err(|f| bad_request(format!("{}: {}", f.path, f.message)))
}

/// The manifest directory, when writes are served; 405 otherwise.
fn manifests<'a>(s: &'a ApiState, verb: &str) -> Result<&'a Manifests, Refusal> {
    s.manifests.as_deref().ok_or_else(|| {
        answer(
            StatusCode::METHOD_NOT_ALLOWED,
            kube::method_not_allowed(verb, "pods"),
        )
    })
}

/// The body as text, when it is JSON or YAML; 415 otherwise.
fn body_text<'a>(headers: &HeaderMap, body: &'a Bytes) -> Result<&'a str, Refusal> {
    let ct = content_type(headers);
    let known = ct.is_empty()
        || ct == "application/json"
        || ct == "application/yaml"
        || ct == "application/x-yaml";
    if !known {
        return Err(answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kube::unsupported_media_type(&ct, &["application/json", "application/yaml"]),
        ));
    }
    std::str::from_utf8(body).map_err(|e| bad_request(format!("the body is not UTF-8: {e}")))
}

/// The media type, lowercased, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A document (JSON or YAML) as JSON.
fn raw_value(text: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// The pod a manifest file holds, as its author wrote it (not defaulted).
async fn file_value(file: &FsPath) -> Result<Value, Refusal> {
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| internal(format!("{}: {e}", file.display())))?;
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(serde::Deserialize::deserialize)
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| {
            let why = format!(
                "{} does not parse now ({e}); fix or replace the file",
                file.display()
            );
            answer(StatusCode::CONFLICT, kube::status(409, "Conflict", why))
        })?;
    let mut pods = docs.into_iter().filter(|d| !d.is_null());
    match (pods.next(), pods.next()) {
        (Some(pod), None) => Ok(pod),
        _ => Err(answer(
            StatusCode::CONFLICT,
            kube::status(
                409,
                "Conflict",
                format!("{} does not hold one pod document", file.display()),
            ),
        )),
    }
}

/// `pod` as the file's format writes it (JSON for `.json`, YAML otherwise).
fn render(file: &FsPath, pod: &Value) -> String {
    let json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        let mut text = serde_json::to_string_pretty(pod).unwrap_or_default();
        text.push('\n');
        text
    } else {
        crate::manifest::to_yaml(pod).unwrap_or_default()
    }
}

async fn write_file(file: &FsPath, text: String) -> Result<(), Refusal> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()))
        .await
        .map_err(|e| internal(format!("writing {}: {e}", file.display())))?
        .map_err(|e| internal(format!("cannot write {}: {e}", file.display())))
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// The pod as shown after a write, or `fallback` (what was written) when
/// it is not shown yet.
fn written(s: &ApiState, namespace: &str, name: &str, fallback: &Value) -> Value {
    find_pod(&s.store, namespace, name)
        .map(|(_, p)| pod_object(&p))
        .unwrap_or_else(|| fallback.clone())
}

fn stale(current: &k8s_openapi::api::core::v1::Pod, sent: &Value) -> bool {
    object::resource_version_of(sent)
        .is_some_and(|rv| Some(rv) != current.metadata.resource_version.as_deref())
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `POST /api/v1/namespaces/{namespace}/pods`.
pub async fn create_pod(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(s, namespace, q, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn create(
    s: ApiState,
    namespace: String,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let m = manifests(&s, "create")?;
    let text = body_text(&headers, &body)?;
    let raw = raw_value(text).map_err(|e| bad_request(format!("the body does not parse: {e}")))?;
    let name = object::name_of(&raw).to_string();
    let pod = object::for_file(&raw, &namespace, None, &m.node_name, None)
        .map_err(|e| object_error(e, &name))?;
    let file = m.dir.join(object::file_name(&namespace, &name));
    m.validate(&file, text, &name)?;
    let _one = m.lock.lock().await;
    if find_pod(&s.store, &namespace, &name).is_some() {
        return Err(answer(
            StatusCode::CONFLICT,
            kube::already_exists("pods", &name),
        ));
    }
    if tokio::fs::try_exists(&file).await.unwrap_or(true) {
        return Err(answer(
            StatusCode::CONFLICT,
            kube::conflict(
                "pods",
                &name,
                &format!("{} exists (and does not declare it)", file.display()),
            ),
        ));
    }
    if !dry_run(&q) {
        m.put(&file, render(&file, &pod), "created", &namespace, &name)
            .await?;
    }
    let shown = written(&s, &namespace, &name, &pod);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `PUT /api/v1/namespaces/{namespace}/pods/{name}`.
pub async fn replace_pod(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    replace(s, namespace, name, q, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn replace(
    s: ApiState,
    namespace: String,
    name: String,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    name_error(&namespace, &name)?;
    let m = manifests(&s, "update")?;
    let text = body_text(&headers, &body)?;
    let raw = raw_value(text).map_err(|e| bad_request(format!("the body does not parse: {e}")))?;
    let _one = m.lock.lock().await;
    let (_, current) = find_pod(&s.store, &namespace, &name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND, kube::not_found("pods", &name)))?;
    let located = m.own_file(&namespace, &name).await?;
    if stale(&current, &raw) {
        return Err(answer(
            StatusCode::CONFLICT,
            kube::conflict("pods", &name, MODIFIED),
        ));
    }
    let before = file_value(&located.file).await?;
    let pod = object::for_file(
        &raw,
        &namespace,
        Some(&name),
        &m.node_name,
        object::uid_of(&before),
    )
    .map_err(|e| object_error(e, &name))?;
    m.validate(&located.file, text, &name)?;
    if !dry_run(&q) {
        let text = render(&located.file, &pod);
        m.put(&located.file, text, "replaced", &namespace, &name)
            .await?;
    }
    Ok(Json(written(&s, &namespace, &name, &pod)).into_response())
}

/// `PATCH /api/v1/namespaces/{namespace}/pods/{name}`: strategic merge,
/// JSON merge or JSON patch, applied to what the file holds.
pub async fn patch_pod(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(s, namespace, name, q, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn patch(
    s: ApiState,
    namespace: String,
    name: String,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let ct = content_type(&headers);
    let Some(kind) = PatchKind::from_content_type(&ct) else {
        return Err(answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kube::unsupported_media_type(&ct, PATCH_TYPES),
        ));
    };
    name_error(&namespace, &name)?;
    let m = manifests(&s, "patch")?;
    let _one = m.lock.lock().await;
    let (_, current) = find_pod(&s.store, &namespace, &name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND, kube::not_found("pods", &name)))?;
    let located = m.own_file(&namespace, &name).await?;
    let before = file_value(&located.file).await?;
    let patched = patch::apply(kind, &before, &body).map_err(|e| {
        let why = format!("the patch cannot be applied: {e}");
        match e {
            PatchError::TestFailed { .. } | PatchError::OperationFailed { .. } => {
                // kubectl prints a 422's causes after "The request is invalid:".
                let mut status = kube::status(422, "Invalid", why.clone());
                status["details"] = serde_json::json!({
                    "name": name, "kind": "pods",
                    "causes": [{"reason": "FieldValueInvalid", "message": why}],
                });
                answer(StatusCode::UNPROCESSABLE_ENTITY, status)
            }
            _ => bad_request(why),
        }
    })?;
    if stale(&current, &patched) {
        return Err(answer(
            StatusCode::CONFLICT,
            kube::conflict("pods", &name, MODIFIED),
        ));
    }
    let pod = object::for_file(
        &patched,
        &namespace,
        Some(&name),
        &m.node_name,
        object::uid_of(&before),
    )
    .map_err(|e| object_error(e, &name))?;
    let text = render(&located.file, &pod);
    m.validate(&located.file, &text, &name)?;
    if !dry_run(&q) {
        m.put(&located.file, text, "patched", &namespace, &name)
            .await?;
    }
    Ok(Json(written(&s, &namespace, &name, &pod)).into_response())
}

/// What a delete asks (`DeleteOptions`, in the body or the query).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    preconditions: Option<Preconditions>,
    dry_run: Option<Vec<String>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

/// `DELETE /api/v1/namespaces/{namespace}/pods/{name}`: removes the file;
/// the pod is shown `Terminating` until its containers are gone.
pub async fn delete_pod(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    delete(s, namespace, name, q, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn delete(
    s: ApiState,
    namespace: String,
    name: String,
    q: HashMap<String, String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    name_error(&namespace, &name)?;
    let options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("the DeleteOptions do not parse: {e}")))?
    };
    let grace = match q.get("gracePeriodSeconds") {
        Some(g) => Some(g.parse::<i64>().map_err(|_| {
            bad_request(format!(
                "gracePeriodSeconds: Invalid value: {g:?}: must be a number"
            ))
        })?),
        None => options.grace_period_seconds,
    };
    let m = manifests(&s, "delete")?;
    let _one = m.lock.lock().await;
    let (uid, current) = find_pod(&s.store, &namespace, &name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND, kube::not_found("pods", &name)))?;
    if current.metadata.deletion_timestamp.is_some() {
        return Ok(Json(pod_object(&current)).into_response());
    }
    let located = m.own_file(&namespace, &name).await?;
    if let Some(p) = &options.preconditions {
        let uid_differs = p.uid.as_deref().is_some_and(|u| u != uid);
        let rv_differs = p
            .resource_version
            .as_deref()
            .is_some_and(|v| Some(v) != current.metadata.resource_version.as_deref());
        if uid_differs || rv_differs {
            return Err(answer(
                StatusCode::CONFLICT,
                kube::conflict(
                    "pods",
                    &name,
                    "the precondition (uid or resourceVersion) does not hold",
                ),
            ));
        }
    }
    let dry = dry_run(&q)
        || options
            .dry_run
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    if dry {
        return Ok(Json(pod_object(&current)).into_response());
    }
    let told = |grace_secs| {
        m.supervisor.send(Deleting {
            uid: uid.clone(),
            grace_secs,
        })
    };
    if grace.is_some() && told(grace).await.is_err() {
        return Err(internal("the supervisor is not running".into()));
    }
    match tokio::fs::remove_file(&located.file).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let _ = told(None).await;
            return Err(internal(format!(
                "cannot remove {}: {e}",
                located.file.display()
            )));
        }
    }
    tracing::info!(pod = %format!("{namespace}/{name}"), file = %located.file.display(), grace = ?grace, "pod deleted through the API: its file is removed");
    m.rescan().await;
    Ok(match find_pod(&s.store, &namespace, &name) {
        Some((_, leaving)) => Json(pod_object(&leaving)).into_response(),
        None => Json(kube::success("pods", &name, &uid)).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_without_parameters() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(content_type(&h), "application/json");
        let body = Bytes::from_static(b"{}");
        assert_eq!(body_text(&h, &body).unwrap(), "{}");
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let refused = body_text(&h, &body).unwrap_err();
        assert_eq!(refused.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_rewritten_file_keeps_its_format() {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
        let json = render(FsPath::new("/d/a.json"), &pod);
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), pod);
        let yaml = render(FsPath::new("/d/a.yaml"), &pod);
        assert!(yaml.contains("kind: Pod"), "{yaml}");
        assert_eq!(raw_value(&yaml).unwrap(), pod);
    }

    fn message(r: Refusal) -> String {
        r.1["message"].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn manifest_errors_become_400_or_422_naming_the_field() {
        let strict = |text: &str| {
            parse_file_with(FsPath::new("x.yaml"), text, ManifestValidation::Strict).unwrap_err()
        };
        let unknown = strict(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: i, imagee: j}]\n",
        );
        let r = manifest_error(unknown, "a");
        assert_eq!(r.0, StatusCode::BAD_REQUEST);
        let m = message(r);
        assert!(m.contains("unknown field") && m.contains("imagee"), "{m}");
        let invalid = strict(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c}]\n",
        );
        let r = manifest_error(invalid, "a");
        assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);
        let m = message(r);
        assert!(
            m.starts_with("Pod \"a\" is invalid: spec.containers[0].image"),
            "{m}"
        );
    }
}
