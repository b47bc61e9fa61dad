//! The pod's phase as a type: decided in [`crate::decide::status`], spelled
//! out only in `status.phase`.

api_enum!(
    /// `status.phase`: where the pod is in its life.
    PodPhase {
        /// Accepted, but a container is not running yet (or init containers
        /// are still running).
        Pending,
        /// Bound to the node and a container is running (or restarting).
        Running,
        /// Every container ended with success and none will restart.
        Succeeded,
        /// Every container ended and at least one failed, or the pod was
        /// refused.
        Failed,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_spelled_as_kubernetes_spells_them() {
        assert_eq!(
            PodPhase::names(),
            ["Pending", "Running", "Succeeded", "Failed"]
        );
        for p in PodPhase::ALL {
            assert_eq!(p.as_str().parse::<PodPhase>(), Ok(*p));
        }
    }
}
