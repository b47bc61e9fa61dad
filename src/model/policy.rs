//! The policies a Pod spec names as strings, as types. The manifest
//! validator refuses any other value, so after validation
//! [`PodExt`](crate::model::PodExt) hands out these types and nothing downstream
//! matches on the strings again.

api_enum!(
    /// `spec.restartPolicy` (default `Always`).
    RestartPolicy { Always, OnFailure, Never }
);

api_enum!(
    /// `spec.containers[*].imagePullPolicy`.
    PullPolicy { Always, IfNotPresent, Never }
);

// Written by hand: the enum comes from a macro shared with PullPolicy, which has no default.
#[allow(clippy::derivable_impls)]
impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::Always
    }
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: Option<i64>) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != Some(0),
            RestartPolicy::Never => false,
        }
    }
}

impl PullPolicy {
    /// The API's default for an image: `Always` for `:latest` or an
    /// untagged reference without a digest, `IfNotPresent` otherwise.
    pub fn default_for(image: &str) -> Self {
        let (name, digest) = match image.split_once('@') {
            Some((name, _)) => (name, true),
            None => (image, false),
        };
        // A registry port (`localhost:5000/img`) is not a tag.
        let last = name.rsplit_once('/').map_or(name, |(_, last)| last);
        match last.split_once(':').map(|(_, tag)| tag) {
            Some("latest") => PullPolicy::Always,
            Some(_) => PullPolicy::IfNotPresent,
            None if digest => PullPolicy::IfNotPresent,
            None => PullPolicy::Always,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_their_api_spelling() {
        for p in RestartPolicy::ALL {
            assert_eq!(p.as_str().parse::<RestartPolicy>(), Ok(*p));
        }
        for p in PullPolicy::ALL {
            assert_eq!(p.to_string().parse::<PullPolicy>(), Ok(*p));
        }
        let err = "always".parse::<RestartPolicy>().unwrap_err();
        assert_eq!(err.value, "always");
        assert!(err.to_string().contains("\"OnFailure\""), "{err}");
        assert_eq!(RestartPolicy::names(), ["Always", "OnFailure", "Never"]);
    }

    #[test]
    fn restart_policy_decides_by_exit_code() {
        assert!(RestartPolicy::Always.restarts(Some(0)));
        assert!(RestartPolicy::OnFailure.restarts(Some(1)));
        assert!(RestartPolicy::OnFailure.restarts(None));
        assert!(!RestartPolicy::OnFailure.restarts(Some(0)));
        assert!(!RestartPolicy::Never.restarts(Some(1)));
    }

    #[test]
    fn pull_policy_defaults_by_tag() {
        let digest = "busybox@sha256:0123";
        for (image, want) in [
            ("busybox", PullPolicy::Always),
            ("busybox:latest", PullPolicy::Always),
            ("busybox:1.36", PullPolicy::IfNotPresent),
            ("localhost:5000/busybox", PullPolicy::Always),
            ("localhost:5000/busybox:1", PullPolicy::IfNotPresent),
            (digest, PullPolicy::IfNotPresent),
        ] {
            assert_eq!(PullPolicy::default_for(image), want, "{image}");
        }
    }
}
