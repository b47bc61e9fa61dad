//! [`Bounded`]: a timeout on every engine call, whatever the engine.
//!
//! One hung call (a stuck `inspect`, a `create` the engine never answers)
//! fails with [`RuntimeError::Timeout`] after its budget, so it delays the
//! one pod that made it and never the agent. The budgets: `call` for an
//! ordinary call; a stop gets the grace period on top, an exec its own
//! timeout on top; a pull is bounded by its progress deadline (the runtime's
//! own) and the overall `pull` budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{
    ContainerDetails, ContainerRuntime, ContainerSummary, CreateSpec, Credentials, ExecOutput,
    ExecRequest, ImageInfo, Result, RuntimeError, RuntimeEvent,
};

/// Puts a timeout on every call of the runtime it wraps.
pub struct Bounded {
    inner: Arc<dyn ContainerRuntime>,
    call: Duration,
    pull: Duration,
}

impl Bounded {
    pub fn new(inner: Arc<dyn ContainerRuntime>, call: Duration, pull: Duration) -> Self {
        Self { inner, call, pull }
    }

    async fn within<T>(
        &self,
        name: &'static str,
        after: Duration,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(after, f)
            .await
            .unwrap_or(Err(RuntimeError::Timeout { call: name, after }))
    }
}

#[async_trait]
impl ContainerRuntime for Bounded {
    async fn version(&self) -> Result<String> {
        self.within("version", self.call, self.inner.version())
            .await
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerSummary>> {
        self.within("list", self.call, self.inner.list_containers(labels))
            .await
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>> {
        self.within("inspect", self.call, self.inner.inspect_container(id))
            .await
    }

    async fn create_container(&self, spec: &CreateSpec) -> Result<String> {
        self.within("create", self.call, self.inner.create_container(spec))
            .await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.within("start", self.call, self.inner.start_container(id))
            .await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let budget = grace + self.call;
        self.within("stop", budget, self.inner.stop_container(id, grace))
            .await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.within("remove", self.call, self.inner.remove_container(id))
            .await
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>> {
        self.within("inspect image", self.call, self.inner.inspect_image(image))
            .await
    }

    async fn pull_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress_deadline: Duration,
    ) -> Result<()> {
        let pull = self.inner.pull_image(image, credentials, progress_deadline);
        self.within("pull", self.pull, pull).await
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        let budget = req.timeout + self.call;
        self.within("exec", budget, self.inner.exec(id, req)).await
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        self.within("logs", self.call, self.inner.logs_tail(id, lines))
            .await
    }

    fn events(&self, label: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        // A stream, not a call: it ends when the engine goes away.
        self.inner.events(label)
    }
}
