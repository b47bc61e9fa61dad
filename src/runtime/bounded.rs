//! [`Bounded`]: a timeout on every engine call, whatever the engine.
//!
//! One hung call (a stuck `inspect`, a `create` the engine never answers)
//! fails with [`RuntimeError::Timeout`] after its budget, so it delays the
//! one pod that made it and never the agent. The budgets: `call` for an
//! ordinary call; a stop gets the grace period on top, an exec its own
//! timeout on top; a pull is bounded by its progress deadline (the runtime's
//! own) and the overall `pull` budget.
//!
//! It also caps how many short calls that only read (list, inspect, image
//! inspect, logs, version) are in flight at once, at
//! [`SHORT_CALLS_IN_FLIGHT`]: a thousand pods syncing at start then queue
//! here instead of opening a thousand engine connections (each with its
//! buffers, kept idle in the client's pool afterwards). The wait for such a
//! slot counts against the call's budget, so a hung engine fails the queued
//! reads too instead of holding them.
//!
//! The calls that change things (create, start, remove) go through the
//! [`Gate`]: a bound adapted to the engine's pace, shared by every worker,
//! that lets a replacement or a removal go ahead of new pods. Their wait
//! for a slot is not part of their budget (it measures the queue, not the
//! engine); their budget, [`Budgets::change`], starts when the engine gets
//! the call. Stops, execs and pulls last as long as their work does and
//! are not capped here (pulls have the puller's own limits).
//!
//! A log stream ([`ContainerRuntime::logs`]) takes a slot and the call
//! budget only to be opened; the stream itself holds no slot and has no
//! budget (`kubectl logs -f` lasts as long as the container or the client),
//! so any number of followers never starve the short calls.
//!
//! An interactive exec or attach gets `call` to start, without a slot; the
//! session that follows lasts as long as its client and has no budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::Semaphore;

use super::gate::{Gate, Kind};
use super::{
    ContainerDetails, ContainerRuntime, ContainerSummary, CreateSpec, Credentials, ExecOutput,
    ExecRequest, ExecSession, ExecStart, ImageInfo, ImageSummary, ImageUse, LogOptions, Result,
    RuntimeError, RuntimeEvent,
};

/// Most short engine calls in flight at once. The engine does not answer
/// faster with more (it serializes much of its work), and each call in
/// flight holds a connection with its buffers.
pub const SHORT_CALLS_IN_FLIGHT: usize = 32;

/// How long the engine may take to answer, by kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// An ordinary call (a list, an inspect); a stop gets the grace period
    /// on top, an exec its own timeout.
    pub call: Duration,
    /// A call that changes things (create, start, remove), from when the
    /// engine gets it: see [`CHANGE_BUDGET`](crate::daemon::CHANGE_BUDGET).
    pub change: Duration,
    /// A whole pull.
    pub pull: Duration,
}

impl Budgets {
    /// `call` for every call but pulls.
    pub fn uniform(call: Duration, pull: Duration) -> Self {
        Self {
            call,
            change: call,
            pull,
        }
    }
}

/// Puts a timeout on every call of the runtime it wraps, and caps the short
/// ones in flight.
pub struct Bounded {
    inner: Arc<dyn ContainerRuntime>,
    call: Duration,
    change: Duration,
    pull: Duration,
    slots: Semaphore,
    gate: Gate,
    /// Counts every call, its errors and its time, when set.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Bounded {
    pub fn new(inner: Arc<dyn ContainerRuntime>, budgets: Budgets) -> Self {
        Self::with_slots(inner, budgets, SHORT_CALLS_IN_FLIGHT)
    }

    /// As [`Bounded::new`], with `slots` short calls in flight at most.
    pub fn with_slots(inner: Arc<dyn ContainerRuntime>, budgets: Budgets, slots: usize) -> Self {
        Self {
            inner,
            call: budgets.call,
            change: budgets.change,
            pull: budgets.pull,
            slots: Semaphore::new(slots.max(1)),
            gate: Gate::new(super::gate::FIRST_LIMIT),
            metrics: None,
        }
    }

    /// The gate the calls that change things go through.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Counts the calls into `metrics` (`kubelet_runtime_operations_*`,
    /// `operation_type` the call's name).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let m = metrics.clone();
        self.gate.observe(Arc::new(move |limit, in_flight| {
            m.engine_limit.set(limit as i64);
            m.engine_in_flight.set(in_flight as i64);
        }));
        self.metrics = Some(metrics);
        self
    }

    /// Makes the call, counted under `operation` when metrics are set.
    async fn counted<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(m) = &self.metrics else {
            return f.await;
        };
        let started = std::time::Instant::now();
        let res = f.await;
        m.runtime_call(operation, started.elapsed(), res.is_ok());
        res
    }

    /// A short call: waits for a slot, then makes the call (its future
    /// exists only once it has a slot), all within `self.call`.
    async fn short<T, F>(&self, name: &'static str, call: impl FnOnce() -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let slotted = async {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = self.slots.acquire().await;
            call().await
        };
        self.within(name, self.call, slotted).await
    }

    /// A call that changes things: waits for the gate (neither part of its
    /// budget nor of its counted time), then makes the call within
    /// `self.change`, counted under `operation`.
    async fn gated<T, F>(
        &self,
        operation: &'static str,
        name: &'static str,
        kind: Kind,
        call: impl FnOnce() -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let (slot, waited) = self.gate.slot().await;
        if let Some(m) = &self.metrics {
            m.engine_wait.observe(waited.as_secs_f64());
        }
        let res = self
            .counted(operation, self.within(name, self.change, call()))
            .await;
        if matches!(res, Err(RuntimeError::Timeout { .. })) {
            if let Some(m) = &self.metrics {
                m.runtime_timeouts
                    .get_or_create(&[("operation_type", operation)])
                    .inc();
            }
        }
        slot.answered(kind);
        res
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
        self.counted("version", self.short("version", || self.inner.version()))
            .await
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerSummary>> {
        self.counted(
            "list_containers",
            self.short("list", || self.inner.list_containers(labels)),
        )
        .await
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>> {
        self.counted(
            "inspect_container",
            self.short("inspect", || self.inner.inspect_container(id)),
        )
        .await
    }

    async fn create_container(&self, spec: &CreateSpec) -> Result<String> {
        self.gated("create_container", "create", Kind::Create, || {
            self.inner.create_container(spec)
        })
        .await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.gated("start_container", "start", Kind::Start, || {
            self.inner.start_container(id)
        })
        .await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let budget = grace + self.call;
        let stop = self.within("stop", budget, self.inner.stop_container(id, grace));
        self.counted("stop_container", stop).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.gated("remove_container", "remove", Kind::Remove, || {
            self.inner.remove_container(id)
        })
        .await
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>> {
        self.counted(
            "inspect_image",
            self.short("inspect image", || self.inner.inspect_image(image)),
        )
        .await
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        self.short("list images", || self.inner.list_images()).await
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.short("remove image", || self.inner.remove_image(image))
            .await
    }

    async fn image_uses(&self) -> Result<Vec<ImageUse>> {
        self.short("list", || self.inner.image_uses()).await
    }

    async fn data_root(&self) -> Result<String> {
        self.short("info", || self.inner.data_root()).await
    }

    async fn cgroups(&self) -> Result<super::Cgroups> {
        self.short("info", || self.inner.cgroups()).await
    }

    async fn pull_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress_deadline: Duration,
        progress: &tokio::sync::watch::Sender<super::pull_progress::PullProgress>,
    ) -> Result<()> {
        let pull = self
            .inner
            .pull_image(image, credentials, progress_deadline, progress);
        self.counted("pull_image", self.within("pull", self.pull, pull))
            .await
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        let budget = req.timeout + self.call;
        let exec = self.within("exec", budget, self.inner.exec(id, req));
        self.counted("exec", exec).await
    }

    async fn exec_attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession> {
        let exec = self.within("exec", self.call, self.inner.exec_attach(id, start));
        self.counted("exec_attach", exec).await
    }

    async fn attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession> {
        let attach = self.within("attach", self.call, self.inner.attach(id, start));
        self.counted("attach", attach).await
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        self.counted(
            "logs",
            self.short("logs", || self.inner.logs_tail(id, lines)),
        )
        .await
    }

    async fn logs(
        &self,
        id: &str,
        opts: &LogOptions,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        // The slot and budget for opening only: see the module's notes.
        self.counted("logs", self.short("logs", || self.inner.logs(id, opts)))
            .await
    }

    fn events(&self, label: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        // A stream, not a call: it ends when the engine goes away.
        self.inner.events(label)
    }

    async fn security_options(&self) -> Result<Vec<String>> {
        self.short("info", || self.inner.security_options()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{Call, FakeDocker};
    use futures::StreamExt;

    fn lists(fake: &FakeDocker) -> usize {
        fake.calls().iter().filter(|c| **c == Call::List).count()
    }

    #[tokio::test(start_paused = true)]
    async fn every_call_is_counted_by_operation_type_with_its_errors_and_timeouts() {
        let fake = Arc::new(FakeDocker::new());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let bounded = Bounded::new(
            fake.clone(),
            Budgets::uniform(Duration::from_millis(200), Duration::from_secs(60)),
        )
        .with_metrics(metrics.clone());
        let count = |op| {
            let l = [("operation_type", op)];
            (
                metrics.runtime_operations.get_or_create(&l).get(),
                metrics.runtime_errors.get_or_create(&l).get(),
            )
        };
        assert!(bounded.list_containers(&[]).await.is_ok());
        assert!(bounded.list_containers(&[]).await.is_ok());
        fake.fail_next(
            "list",
            RuntimeError::Engine {
                call: "list",
                message: "boom".into(),
            },
        );
        assert!(bounded.list_containers(&[]).await.is_err());
        assert_eq!(count("list_containers"), (3, 1));
        // A hung call times out, and counts as an error.
        fake.hang("inspect", "");
        assert!(bounded.inspect_container("x").await.is_err());
        assert_eq!(count("inspect_container"), (1, 1));
        assert_eq!(count("create_container"), (0, 0));
        let took = metrics.encode();
        assert!(
            took.contains(
                "kubelet_runtime_operations_duration_seconds_count{operation_type=\"list_containers\"} 3"
            ),
            "{took}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn short_calls_beyond_the_cap_wait_for_a_slot() {
        let fake = Arc::new(FakeDocker::new());
        fake.delay("list", Duration::from_millis(100));
        let bounded = Arc::new(Bounded::with_slots(
            fake.clone(),
            Budgets::uniform(Duration::from_secs(10), Duration::from_secs(60)),
            4,
        ));
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let b = bounded.clone();
                tokio::spawn(async move { b.list_containers(&[]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(lists(&fake), 4, "only 4 calls reach the engine at once");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(lists(&fake), 8, "the next 4 go as the first 4 end");
        for c in calls {
            let r = c.await.unwrap();
            assert!(r.is_ok(), "{r:?}");
        }
        assert_eq!(lists(&fake), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_log_stream_holds_no_slot() {
        use futures::StreamExt;
        let fake = Arc::new(FakeDocker::new());
        let id = fake.insert_container(
            CreateSpec::default(),
            crate::runtime::ContainerState::Running,
        );
        fake.set_logs(&id, "hello\n");
        let bounded = Bounded::with_slots(
            fake.clone(),
            Budgets::uniform(Duration::from_millis(200), Duration::from_secs(60)),
            1,
        );
        let follow = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let mut stream = bounded.logs(&id, &follow).await.expect("opened");
        assert_eq!(stream.next().await, Some(Ok(bytes::Bytes::from("hello\n"))));
        // Past the call budget, still open and following, and the one slot
        // is free for a short call.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(bounded.list_containers(&[]).await.is_ok());
        assert_eq!(fake.log_streams_open(), 1);
        drop(stream);
        assert_eq!(fake.log_streams_open(), 0);
        // Opening is a short call: it times out on a hung engine.
        fake.hang("logs", "");
        assert!(matches!(
            bounded.logs(&id, &follow).await,
            Err(RuntimeError::Timeout { call: "logs", .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interactive_exec_takes_no_slot_and_its_session_outlives_the_budget() {
        use tokio::io::AsyncWriteExt;
        let fake = Arc::new(FakeDocker::new());
        let id = fake.insert_container(
            CreateSpec::default(),
            crate::runtime::ContainerState::Running,
        );
        fake.hang("list", "");
        let bounded = Arc::new(Bounded::with_slots(
            fake.clone(),
            Budgets::uniform(Duration::from_millis(200), Duration::from_secs(60)),
            1,
        ));
        let b = bounded.clone();
        let hung = tokio::spawn(async move { b.list_containers(&[]).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The only slot is held: the exec starts anyway.
        let start = ExecStart {
            cmd: vec!["cat".into()],
            stdin: true,
            stdout: true,
            ..Default::default()
        };
        let asked = tokio::time::Instant::now();
        let mut session = bounded.exec_attach(&id, &start).await.expect("started");
        assert_eq!(asked.elapsed(), Duration::ZERO, "it waited for a slot");
        // Well past the call budget, the session still carries data.
        tokio::time::sleep(Duration::from_secs(5)).await;
        session.stdin.write_all(b"late").await.unwrap();
        session.stdin.shutdown().await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = session.output.next().await {
            out.extend_from_slice(&chunk.unwrap().1);
        }
        assert_eq!(out, b"late");
        assert_eq!(session.control.exit_code().await, Ok(Some(0)));
        assert!(matches!(
            hung.await.unwrap(),
            Err(RuntimeError::Timeout { .. })
        ));
        // A container that is not running: an error, not a session.
        let refused = bounded.exec_attach("missing", &start).await;
        assert!(refused.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_queued_behind_hung_ones_times_out_within_its_budget() {
        let fake = Arc::new(FakeDocker::new());
        fake.hang("list", "");
        let bounded = Arc::new(Bounded::with_slots(
            fake.clone(),
            Budgets::uniform(Duration::from_millis(200), Duration::from_secs(60)),
            2,
        ));
        let hung: Vec<_> = (0..2)
            .map(|_| {
                let b = bounded.clone();
                tokio::spawn(async move { b.list_containers(&[]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        let queued = bounded.list_containers(&[]).await;
        assert!(
            matches!(queued, Err(RuntimeError::Timeout { call: "list", .. })),
            "{queued:?}"
        );
        // It waited 100 ms for a slot (the hung calls' budgets end at
        // 200 ms), then hung too: its 200 ms count from when it was made,
        // not from when it got its slot.
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert_eq!(lists(&fake), 3);
        // Calls of other kinds (a stop) are not held by the full slots.
        assert!(bounded
            .stop_container("missing", Duration::from_secs(1))
            .await
            .is_ok());
        for h in hung {
            assert!(matches!(
                h.await.unwrap(),
                Err(RuntimeError::Timeout { .. })
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_waits_for_its_turn_outside_its_budget() {
        let fake = Arc::new(FakeDocker::new());
        fake.delay("create", Duration::from_millis(150));
        fake.add_image("img");
        let bounded = Arc::new(Bounded::new(
            fake.clone(),
            Budgets::uniform(Duration::from_millis(200), Duration::from_secs(60)),
        ));
        let limit = bounded.gate().limit();
        let started = tokio::time::Instant::now();
        let creates: Vec<_> = (0..limit * 3)
            .map(|i| {
                let b = bounded.clone();
                tokio::spawn(async move {
                    let spec = CreateSpec {
                        name: format!("c{i}"),
                        image: "img".into(),
                        ..CreateSpec::default()
                    };
                    b.create_container(&spec).await
                })
            })
            .collect();
        for c in creates {
            // Queued up to 300 ms behind the others, each within its own
            // 200 ms once the engine has it.
            let r = c.await.unwrap();
            assert!(r.is_ok(), "{r:?}");
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(fake.containers().len(), limit * 3);
        assert_eq!(bounded.gate().in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_the_engine_holds_past_its_budget_times_out() {
        let fake = Arc::new(FakeDocker::new());
        fake.hang("start", "");
        let bounded = Bounded::new(
            fake.clone(),
            Budgets {
                call: Duration::from_secs(10),
                change: Duration::from_millis(300),
                pull: Duration::from_secs(60),
            },
        );
        let started = tokio::time::Instant::now();
        let r = bounded.start_container("x").await;
        assert!(
            matches!(r, Err(RuntimeError::Timeout { call: "start", .. })),
            "{r:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(bounded.gate().in_flight(), 0);
    }
}
