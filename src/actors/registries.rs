//! The readiness and container-reference registries.
//!
//! Each actor owns the writes to its map; readers that must not wait on a
//! mailbox (pod status, the HTTP API) read the shared `DashMap` snapshot.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use dashmap::DashMap;

pub use crate::decide::probe::ProbeState;

/// A read-only view of the readiness registry.
pub type ReadinessView = Arc<DashMap<String, ProbeState>>;

/// Container ID → probe state. Written by the prober only.
#[derive(Default)]
pub struct Readiness {
    map: ReadinessView,
}

impl Readiness {
    /// A read-only view for status builders.
    pub fn snapshot(&self) -> ReadinessView {
        self.map.clone()
    }
}

impl Actor for Readiness {
    type Context = Context<Self>;
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetProbeState {
    pub container_id: String,
    pub state: ProbeState,
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
        self.map.insert(msg.container_id, msg.state);
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
    map: Arc<DashMap<String, ContainerRef>>,
}

impl ContainerRefs {
    pub fn snapshot(&self) -> Arc<DashMap<String, ContainerRef>> {
        self.map.clone()
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
