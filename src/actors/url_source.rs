//! `--manifest-url` as a second source of desired pods: polled every
//! `--http-check-frequency` with the `--manifest-url-header` headers, the
//! same documents and validation as a manifest file, `ETag` /
//! `If-None-Match` honoured. An unreachable URL, an error status or a body
//! that does not parse keeps the last good set (the problem is logged once
//! and, for a bad body, shown in those pods' status message).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};

use super::source::desired_from;
use super::supervisor::SetDesired;
use super::DesiredPod;
use crate::manifest::{self, ManifestPod};
use crate::settings::ManifestValidation;

/// Fetch the URL now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct FetchNow;

/// What one fetch brought.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the set is unchanged.
    NotModified,
    /// A body, with its `ETag`.
    Body { text: String, etag: Option<String> },
    /// No usable answer (unreachable, an error status).
    Failed(String),
}

pub struct UrlSource {
    url: String,
    headers: Vec<(String, String)>,
    every: Duration,
    node_name: String,
    sink: Recipient<SetDesired>,
    client: reqwest::Client,
    etag: Option<String>,
    /// The pods of the last body that parsed.
    last_good: Option<Vec<ManifestPod>>,
    last_problem: Option<String>,
    fetching: bool,
    /// Unknown or duplicate manifest fields: refused or warned about.
    validation: ManifestValidation,
    metrics: Arc<crate::metrics::Metrics>,
}

impl UrlSource {
    pub fn new(
        url: String,
        headers: Vec<(String, String)>,
        every: Duration,
        node_name: String,
        sink: Recipient<SetDesired>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            url,
            headers,
            every,
            node_name,
            sink,
            client,
            etag: None,
            last_good: None,
            last_problem: None,
            fetching: false,
            validation: ManifestValidation::Strict,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    /// Sets `--manifest-validation` (strict when not called).
    pub fn with_validation(mut self, validation: ManifestValidation) -> Self {
        self.validation = validation;
        self
    }

    /// Counts a body that cannot be used in `podvisor_manifest_errors_total`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn send(&self, problem: Option<&str>) {
        let Some(pods) = &self.last_good else {
            return;
        };
        let pods: Vec<DesiredPod> = pods
            .iter()
            .cloned()
            .map(|p| {
                let mut d = desired_from(p, "http", &self.node_name);
                d.problem = problem.map(str::to_string);
                d
            })
            .collect();
        self.sink.do_send(SetDesired {
            source: "http",
            pods,
            taken: Vec::new(),
        });
    }

    /// Logs a problem once (until it changes).
    fn problem(&mut self, problem: Option<String>) {
        if problem != self.last_problem {
            match &problem {
                Some(p) => tracing::error!(url = %self.url, "manifest URL: {p}"),
                None if self.last_problem.is_some() => {
                    tracing::info!(url = %self.url, "manifest URL answers again")
                }
                None => {}
            }
            self.last_problem = problem;
        }
    }

    fn apply(&mut self, fetched: Fetched) {
        match fetched {
            Fetched::NotModified => {}
            Fetched::Failed(e) => self.problem(Some(e)),
            Fetched::Body { text, etag } => {
                match manifest::parse_file_with(Path::new(&self.url), &text, self.validation) {
                    Ok(pods) => {
                        self.etag = etag;
                        self.last_good = Some(pods);
                        self.problem(None);
                        self.send(None);
                    }
                    Err(e) => {
                        let kind = e.kind();
                        let e = e.to_string();
                        // Once per problem, as it is logged.
                        if self.last_problem.as_deref() != Some(&e) {
                            self.metrics.manifest_error(kind);
                        }
                        self.problem(Some(e.clone()));
                        // Keep the last good set, and say why.
                        self.send(Some(&e));
                    }
                }
            }
        }
    }
}

async fn fetch(
    client: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    etag: Option<String>,
) -> Fetched {
    let mut req = client.get(&url);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    if let Some(tag) = &etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, tag);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Fetched::Failed(format!("cannot fetch: {e}")),
    };
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Fetched::NotModified;
    }
    if !resp.status().is_success() {
        return Fetched::Failed(format!("answered {}", resp.status()));
    }
    let etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match resp.text().await {
        Ok(text) => Fetched::Body { text, etag },
        Err(e) => Fetched::Failed(format!("cannot read the body: {e}")),
    }
}

impl Actor for UrlSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(FetchNow);
        ctx.run_interval(self.every, |_, ctx| ctx.notify(FetchNow));
    }
}

impl Handler<FetchNow> for UrlSource {
    type Result = ();

    fn handle(&mut self, _: FetchNow, ctx: &mut Context<Self>) {
        if self.fetching {
            return;
        }
        self.fetching = true;
        let job = fetch(
            self.client.clone(),
            self.url.clone(),
            self.headers.clone(),
            self.etag.clone(),
        );
        ctx.spawn(job.into_actor(self).map(|fetched, act, _| {
            act.fetching = false;
            act.apply(fetched);
        }));
    }
}
