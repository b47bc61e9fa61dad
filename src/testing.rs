//! Shared test fixtures (feature `test-util`, and the crate's own unit
//! tests): fluent pods, `pod("web").container("app").build()`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, Lifecycle, LifecycleHandler, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::actors::DesiredPod;
use crate::model::naming;

/// The image every fixture container runs unless told otherwise.
pub const BUSYBOX: &str = "busybox:1";
/// The node name of [`crate::actors::NodeConfig::for_tests`].
pub const NODE: &str = "test-node";

/// A pod under construction: `restartPolicy: Always`, a grace period of
/// 2 s, in namespace `default`.
#[derive(Debug, Clone)]
pub struct PodBuilder(Pod);

pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A container running `sleep 3600` in [`BUSYBOX`], pulled if not present.
pub fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(BUSYBOX.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sleep".into(), "3600".into()]),
        ..Default::default()
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    /// The container (app or init) named `name`.
    fn find(&mut self, name: &str) -> &mut Container {
        let spec = self.spec();
        spec.containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("fixture has no container {name}"))
    }

    pub fn container(mut self, name: &str) -> Self {
        self.spec().containers.push(container(name));
        self
    }

    /// An init container that runs to completion (no command of its own).
    pub fn init(mut self, name: &str) -> Self {
        let c = Container {
            command: None,
            ..container(name)
        };
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    /// A sidecar: an init container with `restartPolicy: Always` that
    /// keeps running (`sleep 3600`).
    pub fn sidecar(mut self, name: &str) -> Self {
        let c = Container {
            restart_policy: Some("Always".into()),
            ..container(name)
        };
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }

    pub fn restart(mut self, policy: &str) -> Self {
        self.spec().restart_policy = Some(policy.into());
        self
    }

    pub fn grace(mut self, secs: i64) -> Self {
        self.spec().termination_grace_period_seconds = Some(secs);
        self
    }

    pub fn image(mut self, container: &str, image: &str, policy: &str) -> Self {
        let c = self.find(container);
        c.image = Some(image.into());
        c.image_pull_policy = Some(policy.into());
        self
    }

    pub fn args(mut self, container: &str, args: &[&str]) -> Self {
        self.find(container).args = Some(args.iter().map(|a| a.to_string()).collect());
        self
    }

    /// CPU and memory requests (Kubernetes quantities) of `container`.
    pub fn requests(mut self, container: &str, cpu: &str, memory: &str) -> Self {
        let r = self
            .find(container)
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        let requests = r.requests.get_or_insert_with(Default::default);
        requests.insert("cpu".into(), Quantity(cpu.into()));
        requests.insert("memory".into(), Quantity(memory.into()));
        self
    }

    /// An exec preStop hook on `container`.
    pub fn pre_stop(mut self, container: &str, command: &[&str]) -> Self {
        self.find(container).lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(command.iter().map(|a| a.to_string()).collect()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        self
    }

    /// Any other change.
    pub fn with(mut self, f: impl FnOnce(&mut Pod)) -> Self {
        f(&mut self.0);
        self
    }

    /// The pod with the UID a file source on the test node gives it.
    pub fn build_pod(self) -> Pod {
        let mut pod = self.0;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        pod.metadata.uid = Some(naming::derived_pod_uid("file", NODE, &ns, &name));
        pod
    }

    /// The pod as the Supervisor gets it from the manifest directory.
    pub fn build(self) -> DesiredPod {
        let pod = self.build_pod();
        let name = pod.metadata.name.clone().unwrap_or_default();
        DesiredPod {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod: Arc::new(pod),
            source: format!("{name}.yaml"),
            problem: None,
        }
    }
}

/// Collects the desired sets a manifest source sends (an actor standing in
/// for the Supervisor).
#[derive(Default, Clone)]
pub struct Sink(pub Arc<std::sync::Mutex<Vec<crate::actors::supervisor::SetDesired>>>);

impl actix::Actor for Sink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<crate::actors::supervisor::SetDesired> for Sink {
    type Result = ();
    fn handle(&mut self, msg: crate::actors::supervisor::SetDesired, _: &mut actix::Context<Self>) {
        // As the Supervisor does: the set is taken in.
        msg.taken.iter().for_each(|t| t.notify_one());
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
    }
}

/// A network plugin for actor tests: records each call with the engine
/// calls made before it (so a test can check what ran first), gives IPs
/// from 10.77.0.0/16, and fails its setups while told to.
#[derive(Default)]
pub struct RecordingPlugin {
    pub calls: std::sync::Mutex<Vec<PluginCall>>,
    pub fail_setup: std::sync::atomic::AtomicBool,
    pub fail_check: std::sync::atomic::AtomicBool,
    /// The engine, whose calls are snapshotted with each plugin call.
    pub engine: Option<Arc<crate::runtime::fake::FakeDocker>>,
    /// Which network mode the infra container gets (`Some("none")`: CNI-like).
    pub mode: Option<&'static str>,
}

/// One call a [`RecordingPlugin`] got.
#[derive(Debug, Clone)]
pub struct PluginCall {
    pub call: &'static str,
    pub infra_id: String,
    pub netns: Option<std::path::PathBuf>,
    /// The engine's calls made before this one.
    pub engine_calls: Vec<crate::runtime::fake::Call>,
}

impl RecordingPlugin {
    pub fn calls(&self) -> Vec<PluginCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note(&self, call: &'static str, pod: &crate::network::PodNetwork) {
        let engine_calls = self.engine.as_ref().map(|e| e.calls()).unwrap_or_default();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PluginCall {
                call,
                infra_id: pod.infra_id.clone(),
                netns: pod.netns.clone(),
                engine_calls,
            });
    }
}

#[async_trait::async_trait]
impl crate::network::NetworkPlugin for RecordingPlugin {
    fn name(&self) -> &str {
        "recording"
    }
    fn infra_network_mode(&self) -> Option<&'static str> {
        self.mode
    }
    fn serves_host_ports(&self) -> bool {
        true
    }
    async fn init(&self) -> Result<(), crate::network::NetworkError> {
        Ok(())
    }
    async fn setup(
        &self,
        pod: &crate::network::PodNetwork,
    ) -> Result<crate::network::Wired, crate::network::NetworkError> {
        self.note("setup", pod);
        if self.fail_setup.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::network::NetworkError::Failed {
                plugin: "recording".into(),
                call: "setup",
                message: "told to fail".into(),
            });
        }
        let n = self.calls().len() as u8;
        Ok(crate::network::Wired {
            ips: vec![std::net::IpAddr::from([10, 77, 0, n])],
            record: serde_json::json!({"n": n}),
        })
    }
    async fn status(
        &self,
        _: &crate::network::PodNetwork,
    ) -> Result<crate::network::Wired, crate::network::NetworkError> {
        Ok(crate::network::Wired::default())
    }
    async fn check(
        &self,
        pod: &crate::network::PodNetwork,
    ) -> Result<(), crate::network::NetworkError> {
        self.note("check", pod);
        if self.fail_check.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::network::NetworkError::Failed {
                plugin: "recording".into(),
                call: "check",
                message: "told to fail".into(),
            });
        }
        Ok(())
    }
    async fn teardown(
        &self,
        pod: &crate::network::PodNetwork,
    ) -> Result<(), crate::network::NetworkError> {
        self.note("teardown", pod);
        Ok(())
    }
}
