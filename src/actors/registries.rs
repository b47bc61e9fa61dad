//! The readiness and container-reference registries.
//!
//! Each actor owns the writes to its map ([`Owned`]); readers that must
//! not wait on a mailbox (pod status, the HTTP API, the event recorder)
//! read a [`View`].

use actix::{Actor, Context, Handler, Message, Recipient};

use super::prober::ProbeNews;
use super::shared::{Owned, View};
pub use crate::decide::probe::ProbeState;

/// A read-only view of the readiness registry.
pub type ReadinessView = View<String, ProbeState>;

/// Container ID → probe state. Written through the prober's messages only.
#[derive(Default)]
pub struct Readiness {
    map: Owned<String, ProbeState>,
}

impl Readiness {
    /// A read-only view for status builders.
    pub fn snapshot(&self) -> ReadinessView {
        self.map.view()
    }
}

impl Actor for Readiness {
    type Context = Context<Self>;
}

/// A container's probe state. With `notify`, the registry tells that pod
/// worker once the state is stored: the news can never overtake the state
/// it announces (the worker builds the status from this registry).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SetProbeState {
    pub container_id: String,
    pub state: ProbeState,
    pub notify: Option<Recipient<ProbeNews>>,
}

/// Drops what is known of a container (it was killed or is gone).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Forget {
    pub container_id: String,
}

impl Handler<SetProbeState> for Readiness {
    type Result = ();
    fn handle(&mut self, msg: SetProbeState, _: &mut Context<Self>) {
        self.map.insert(msg.container_id.clone(), msg.state);
        if let Some(worker) = msg.notify {
            worker.do_send(ProbeNews::Changed {
                container_id: msg.container_id,
            });
        }
    }
}

impl Handler<Forget> for Readiness {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        self.map.remove(&msg.container_id);
    }
}

/// Where a container sits in its pod, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// `spec.containers{name}`.
    pub field_path: String,
}

/// Container ID → reference.
#[derive(Default)]
pub struct ContainerRefs {
    map: Owned<String, ContainerRef>,
}

impl ContainerRefs {
    pub fn snapshot(&self) -> View<String, ContainerRef> {
        self.map.view()
    }
}

impl Actor for ContainerRefs {
    type Context = Context<Self>;
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetRef {
    pub container_id: String,
    pub reference: ContainerRef,
}

impl Handler<SetRef> for ContainerRefs {
    type Result = ();
    fn handle(&mut self, msg: SetRef, _: &mut Context<Self>) {
        self.map.insert(msg.container_id, msg.reference);
    }
}

impl Handler<Forget> for ContainerRefs {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        self.map.remove(&msg.container_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// A pod worker stand-in: on news, reads the registry as the status
    /// builder would, and keeps what it saw.
    struct Reader {
        view: ReadinessView,
        seen: Arc<Mutex<Vec<Option<ProbeState>>>>,
    }

    impl Actor for Reader {
        type Context = Context<Self>;
    }

    impl Handler<ProbeNews> for Reader {
        type Result = ();
        fn handle(&mut self, msg: ProbeNews, _: &mut Context<Self>) {
            if let ProbeNews::Changed { container_id } = msg {
                self.seen.lock().unwrap().push(self.view.get(&container_id));
            }
        }
    }

    #[actix::test]
    async fn news_of_a_probe_state_never_overtakes_the_state() {
        let registry = Readiness::default();
        let view = registry.snapshot();
        let registry = registry.start();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = Reader {
            view: view.clone(),
            seen: seen.clone(),
        }
        .start();
        // A busy registry: its mailbox holds thousands of writes before
        // the one the worker hears about.
        for i in 0..5000 {
            registry.do_send(SetProbeState {
                container_id: format!("other-{i}"),
                state: ProbeState {
                    ready: false,
                    started: false,
                },
                notify: None,
            });
        }
        let ready = ProbeState {
            ready: true,
            started: true,
        };
        registry.do_send(SetProbeState {
            container_id: "c1".into(),
            state: ready,
            notify: Some(reader.recipient()),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no news reached the worker"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Some(ready)],
            "the worker read a stale state"
        );
        assert_eq!(view.len(), 5001);
    }
}
