//! The request parsing of the node's Kubernetes API: the `labelSelector`,
//! `fieldSelector` and `includeObject` of a request must parse to `Ok` or an
//! error for any input, and a parsed selector must match a pod without
//! panicking.
//!
//! The input's first line is the label selector, the second the field
//! selector (either may be empty); the whole input is also tried as
//! `includeObject`. Input that is not UTF-8 is skipped: a query string
//! reaches the parsers decoded.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use podvisor::api::kube::selectors::POD_FIELDS;
use podvisor::api::kube::{pod_field, FieldSelector, IncludeObject, LabelSelector};

fn pod() -> &'static Pod {
    static POD: OnceLock<Pod> = OnceLock::new();
    POD.get_or_init(|| {
        serde_json::from_str(
            r#"{"metadata": {"name": "web", "namespace": "default",
                 "labels": {"app": "web", "tier": "front", "a.b/c": "x"}},
               "spec": {"nodeName": "node-1", "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "busybox"}]},
               "status": {"phase": "Running", "podIP": "10.0.0.2"}}"#,
        )
        .expect("the fixture pod parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let labels = lines.next().unwrap_or("");
    let fields = lines.next().unwrap_or("");
    let pod = pod();
    if let Ok(selector) = LabelSelector::parse(labels) {
        let map: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
        let _ = selector.matches(&map);
    }
    if let Ok(selector) = FieldSelector::parse(fields) {
        let _ = selector.check(POD_FIELDS);
        let _ = selector.matches(|f| pod_field(pod, f));
    }
    let _ = IncludeObject::parse(Some(text));
});
