//! Decisions, with no I/O: given what is wanted and what the engine shows,
//! what to do and what to report.
//!
//! - [`admission`]: node admission of a pod against the node and the pods
//!   already admitted (resources, node affinity, host ports).
//! - [`plan`]: the pure planner (`SyncPod`): what to create, kill, start.
//! - [`gc`]: which dead containers go, per pod and node-wide.
//! - [`image_gc`]: which unused images go when the image disk is full.
//! - [`status`]: Kubernetes pod status from what the engine shows.
//! - [`backoff`]: CrashLoopBackOff and image pull back-off delays (10 s
//!   doubling to 300 s).
//! - [`probe`]: probe defaults and threshold counting.
//! - [`deadline`]: the `activeDeadlineSeconds` of a pod.
//! - [`unserved`]: fields with nowhere to go (`imagePullSecrets`,
//!   `serviceAccountName`, `readinessGates`): warnings, and `Ready`.

pub mod admission;
pub mod backoff;
pub mod deadline;
pub mod gc;
pub mod image_gc;
pub mod plan;
pub mod probe;
pub mod status;
pub mod unserved;
