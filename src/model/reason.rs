//! The reasons a container state shows (`kubectl get pods` prints them in
//! STATUS), as types: set where podvisor decides them, spelled out only in
//! status and events.

api_enum!(
    /// Why a container is `Waiting`.
    WaitingReason {
        /// The pod's sandbox or volumes are being made, or the image pulled.
        ContainerCreating,
        /// An app container waits for the init containers.
        PodInitializing,
        ErrImagePull,
        ImagePullBackOff,
        /// `imagePullPolicy: Never` and the image is not on the node.
        ErrImageNeverPull,
        CrashLoopBackOff,
        /// The container's configuration cannot be made (env, user, mounts).
        CreateContainerConfigError,
        /// The engine refused to create or start it.
        CreateContainerError,
    }
);

api_enum!(
    /// Why the node refuses a pod: the `Failed` pod's `status.reason`.
    RefusalReason {
        /// Its CPU request exceeds what the node can give.
        OutOfcpu,
        /// Its memory request exceeds what the node can give.
        OutOfmemory,
        /// Its resources cannot be read.
        UnexpectedAdmissionError,
        /// A volume type podvisor does not run (configMap, PVC, ...).
        UnsupportedVolume,
        InvalidVolume,
        /// A security setting the node does not allow (privileged, ...).
        Forbidden,
        InvalidResources,
        InvalidVolumeMount,
        /// A `hostPort` the node's network plugin cannot serve.
        UnsupportedHostPort,
        /// A `hostPort` another admitted pod holds (the kubelet's NodePorts
        /// predicate).
        NodePorts,
        /// Its `nodeSelector` or required node affinity does not match the
        /// node's labels.
        NodeAffinity,
        /// Pod-level `spec.resources.limits`: podvisor makes no pod cgroup
        /// to hold them.
        UnsupportedPodResources,
    }
);

api_enum!(
    /// Why a container is `Terminated`.
    TerminatedReason { Completed, Error, OOMKilled }
);

impl TerminatedReason {
    /// The kubelet's reason for an exit: OOMKilled first, then by exit code.
    pub fn of_exit(exit_code: i64, oom_killed: bool) -> Self {
        match (oom_killed, exit_code) {
            (true, _) => TerminatedReason::OOMKilled,
            (false, 0) => TerminatedReason::Completed,
            (false, _) => TerminatedReason::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_spelled_as_kubernetes_spells_them() {
        assert_eq!(
            WaitingReason::CrashLoopBackOff.to_string(),
            "CrashLoopBackOff"
        );
        assert_eq!(
            "ImagePullBackOff".parse(),
            Ok(WaitingReason::ImagePullBackOff)
        );
        assert_eq!(TerminatedReason::OOMKilled.as_str(), "OOMKilled");
    }

    #[test]
    fn an_exit_is_completed_error_or_oom_killed() {
        assert_eq!(
            TerminatedReason::of_exit(0, false),
            TerminatedReason::Completed
        );
        assert_eq!(TerminatedReason::of_exit(2, false), TerminatedReason::Error);
        assert_eq!(
            TerminatedReason::of_exit(0, true),
            TerminatedReason::OOMKilled
        );
        assert_eq!(
            TerminatedReason::of_exit(137, true),
            TerminatedReason::OOMKilled
        );
    }
}
