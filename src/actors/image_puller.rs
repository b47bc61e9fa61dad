//! The ImagePuller: makes sure an image is present before a container is
//! created from it, following the pull policy.
//!
//! Concurrent requests for one image share one pull and all get its answer.
//! (The queue, rate limit and back-off arrive with the puller issue.)

use std::collections::HashMap;
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture,
};
use tokio::sync::oneshot;

use crate::runtime::{ContainerRuntime, RuntimeError};

/// Asks for `image` to be present, per `policy` (`Always`, `IfNotPresent`,
/// `Never`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PullOutcome, PullError>")]
pub struct EnsureImage {
    pub image: String,
    pub policy: String,
    /// The asking pod's UID (per-pod back-off keys on it).
    pub pod_uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    AlreadyPresent,
    Pulled,
}

/// Why an image is not there; `reason` is what the container status shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct PullError {
    /// `ErrImagePull` or `ErrImageNeverPull`.
    pub reason: &'static str,
    pub message: String,
}

type Answer = Result<PullOutcome, PullError>;

pub struct ImagePuller {
    runtime: Arc<dyn ContainerRuntime>,
    /// Image → callers waiting for the pull under way.
    in_flight: HashMap<String, Vec<oneshot::Sender<Answer>>>,
}

impl ImagePuller {
    pub fn new(runtime: Arc<dyn ContainerRuntime>) -> Self {
        Self {
            runtime,
            in_flight: HashMap::new(),
        }
    }
}

impl Actor for ImagePuller {
    type Context = Context<Self>;
}

async fn ensure(runtime: Arc<dyn ContainerRuntime>, req: EnsureImage) -> Answer {
    let engine = |e: RuntimeError| PullError {
        reason: "ErrImagePull",
        message: e.to_string(),
    };
    let present = runtime
        .image_id(&req.image)
        .await
        .map_err(engine)?
        .is_some();
    match req.policy.as_str() {
        "Never" if present => Ok(PullOutcome::AlreadyPresent),
        "Never" => Err(PullError {
            reason: "ErrImageNeverPull",
            message: format!(
                "Container image \"{}\" is not present with pull policy of Never",
                req.image
            ),
        }),
        "IfNotPresent" if present => Ok(PullOutcome::AlreadyPresent),
        _ => {
            tracing::info!(image = %req.image, "pulling image");
            runtime
                .pull_image(&req.image, None)
                .await
                .map_err(|e| PullError {
                    reason: "ErrImagePull",
                    message: format!("failed to pull image \"{}\": {e}", req.image),
                })?;
            Ok(PullOutcome::Pulled)
        }
    }
}

impl Handler<EnsureImage> for ImagePuller {
    type Result = ResponseFuture<Answer>;

    fn handle(&mut self, msg: EnsureImage, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let image = msg.image.clone();
        if let Some(waiters) = self.in_flight.get_mut(&image) {
            waiters.push(tx);
        } else {
            self.in_flight.insert(image.clone(), vec![tx]);
            let work =
                ensure(self.runtime.clone(), msg)
                    .into_actor(self)
                    .map(move |answer, act, _| {
                        for waiter in act.in_flight.remove(&image).unwrap_or_default() {
                            let _ = waiter.send(answer.clone());
                        }
                    });
            ctx.spawn(work);
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(PullError {
                    reason: "ErrImagePull",
                    message: "the image puller stopped".into(),
                })
            })
        })
    }
}
