//! Probe settings and threshold counting, as Kubernetes defines them. Pure.
//!
//! A probe's result changes only after `successThreshold` consecutive
//! successes or `failureThreshold` consecutive failures. Readiness starts
//! as failure (not ready until proven), liveness and startup as unknown
//! (a liveness failure needs `failureThreshold` failures in a row).

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

/// What the probes say of a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeState {
    /// Ready to serve (readiness probe, or running without one).
    pub ready: bool,
    /// Past its startup probe (or it has none).
    pub started: bool,
}

impl ProbeState {
    /// Before any probe ran: ready only without readiness and startup
    /// probes; started only without a startup probe.
    pub fn initial(c: &k8s_openapi::api::core::v1::Container) -> Self {
        Self {
            ready: c.readiness_probe.is_none() && c.startup_probe.is_none(),
            started: c.startup_probe.is_none(),
        }
    }
}

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// A probe's timing and thresholds with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: u64, min: u64) -> Duration {
    let v = v.map_or(default, |v| u64::try_from(v).unwrap_or(0));
    Duration::from_secs(if v == 0 { default.max(min) } else { v.max(min) })
}

impl Timing {
    /// Defaults: period 10 s, timeout 1 s, success 1, failure 3, no initial
    /// delay. Liveness and startup probes always use a success threshold
    /// of 1 (Kubernetes refuses anything else).
    pub fn of(p: &Probe, kind: ProbeKind) -> Self {
        let threshold = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Self {
            initial_delay: Duration::from_secs(
                p.initial_delay_seconds
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0),
            ),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: match kind {
                ProbeKind::Readiness => threshold(p.success_threshold, 1),
                _ => 1,
            },
            failure_threshold: threshold(p.failure_threshold, 3),
        }
    }
}

/// Consecutive-result counting for one probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    timing: Timing,
    result: Option<bool>,
    successes: u32,
    failures: u32,
}

impl Counter {
    pub fn new(timing: Timing, kind: ProbeKind) -> Self {
        Self {
            timing,
            result: match kind {
                ProbeKind::Readiness => Some(false),
                _ => None,
            },
            successes: 0,
            failures: 0,
        }
    }

    /// The current result: `Some(true)` success, `Some(false)` failure,
    /// `None` not decided yet.
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Counts one attempt; returns the new result when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.timing.success_threshold && self.result != Some(true) {
                self.result = Some(true);
                return self.result;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.timing.failure_threshold && self.result != Some(false) {
                self.result = Some(false);
                return self.result;
            }
        }
        None
    }

    /// Starts counting afresh (after a liveness kill was asked for).
    pub fn reset(&mut self) {
        self.successes = 0;
        self.failures = 0;
        self.result = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: Option<i32>, failure: Option<i32>) -> Probe {
        Probe {
            success_threshold: success,
            failure_threshold: failure,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let t = Timing::of(&Probe::default(), ProbeKind::Readiness);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = Timing::of(
            &Probe {
                period_seconds: Some(2),
                timeout_seconds: Some(5),
                initial_delay_seconds: Some(7),
                ..Default::default()
            },
            ProbeKind::Liveness,
        );
        assert_eq!(t.period, Duration::from_secs(2));
        assert_eq!(t.timeout, Duration::from_secs(5));
        assert_eq!(t.initial_delay, Duration::from_secs(7));
    }

    #[test]
    fn liveness_and_startup_success_threshold_is_one() {
        for kind in [ProbeKind::Liveness, ProbeKind::Startup] {
            assert_eq!(Timing::of(&probe(Some(3), None), kind).success_threshold, 1);
        }
        assert_eq!(
            Timing::of(&probe(Some(3), None), ProbeKind::Readiness).success_threshold,
            3
        );
    }

    #[test]
    fn liveness_fails_after_failure_threshold_consecutive_failures() {
        let mut c = Counter::new(
            Timing::of(&probe(None, Some(3)), ProbeKind::Liveness),
            ProbeKind::Liveness,
        );
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), None);
        // A success in between starts the count again.
        assert_eq!(c.observe(true), Some(true));
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(false));
        // Staying failed is not a change.
        assert_eq!(c.observe(false), None);
    }

    #[test]
    fn readiness_starts_not_ready_and_needs_success_threshold() {
        let mut c = Counter::new(
            Timing::of(&probe(Some(2), Some(2)), ProbeKind::Readiness),
            ProbeKind::Readiness,
        );
        assert_eq!(c.result(), Some(false));
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(true), Some(true));
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(false));
    }

    #[test]
    fn startup_succeeds_on_the_first_success() {
        let mut c = Counter::new(
            Timing::of(&probe(None, Some(30)), ProbeKind::Startup),
            ProbeKind::Startup,
        );
        for _ in 0..29 {
            assert_eq!(c.observe(false), None);
        }
        assert_eq!(c.observe(true), Some(true));
    }

    #[test]
    fn reset_forgets_the_run() {
        let mut c = Counter::new(
            Timing::of(&probe(None, Some(2)), ProbeKind::Liveness),
            ProbeKind::Liveness,
        );
        c.observe(false);
        c.reset();
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(false));
    }
}
