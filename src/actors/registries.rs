//! The readiness and container-reference registries.
//!
//! Each actor owns the writes to its map; readers that must not wait on a
//! mailbox (pod status, the HTTP API) read the shared `DashMap` snapshot.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use dashmap::DashMap;

/// Container ID → ready.
#[derive(Default)]
pub struct Readiness {
    map: Arc<DashMap<String, bool>>,
}

impl Readiness {
    /// A read-only view for status builders.
    pub fn snapshot(&self) -> Arc<DashMap<String, bool>> {
        self.map.clone()
    }
}

impl Actor for Readiness {
    type Context = Context<Self>;
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetReady {
    pub container_id: String,
    pub ready: bool,
}

/// Drops what is known of a container (it was killed or is gone).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Forget {
    pub container_id: String,
}

impl Handler<SetReady> for Readiness {
    type Result = ();
    fn handle(&mut self, msg: SetReady, _: &mut Context<Self>) {
        self.map.insert(msg.container_id, msg.ready);
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
