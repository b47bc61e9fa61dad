//! The kubelet's `runAsNonRoot` verification against the image's user.

use super::Security;

/// Why a container may not run as `runAsNonRoot` asks, in the kubelet's
/// words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonRootError {
    /// `runAsNonRoot` with `runAsUser: 0`.
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsRoot { pod: String, container: String },
    /// The image's user is root (empty, `0` or `root`).
    #[error("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")]
    ImageRunsAsRoot { pod: String, container: String },
    /// The image's user is a name: it cannot be verified.
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is \
         non-root (pod: {pod:?}, container: {container})"
    )]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
}

/// The kubelet's `runAsNonRoot` verification, once the image's configured
/// user (`image_user`, Docker's `Config.User`: `name|uid[:group|gid]`) is
/// known. Nothing to check without `runAsNonRoot`. With it: a `runAsUser` of
/// 0 is refused, any other `runAsUser` passes; without one, the image's user
/// must be a non-zero numeric UID (an empty user, `0` or `root` runs as root;
/// another name cannot be verified). `pod` names the pod in the message.
pub fn check_non_root(
    sec: &Security,
    image_user: &str,
    pod: &str,
    container: &str,
) -> Result<(), NonRootError> {
    if !sec.run_as_non_root {
        return Ok(());
    }
    let (pod, container) = (pod.to_string(), container.to_string());
    if let Some(uid) = sec.run_as_user {
        if uid == 0 {
            return Err(NonRootError::RunAsRoot { pod, container });
        }
        return Ok(());
    }
    let user = image_user.split(':').next().unwrap_or_default();
    match user {
        "" | "root" => Err(NonRootError::ImageRunsAsRoot { pod, container }),
        u if u.bytes().all(|b| b.is_ascii_digit()) => match u.parse::<u64>() {
            Ok(0) => Err(NonRootError::ImageRunsAsRoot { pod, container }),
            _ => Ok(()),
        },
        name => Err(NonRootError::NonNumericUser {
            user: name.to_string(),
            pod,
            container,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests read the messages.
    fn check_non_root(
        sec: &Security,
        image_user: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), String> {
        super::check_non_root(sec, image_user, pod, container).map_err(|e| e.to_string())
    }

    fn non_root(run_as_user: Option<i64>) -> Security {
        Security {
            run_as_non_root: true,
            run_as_user,
            ..Default::default()
        }
    }

    #[test]
    fn non_root_with_run_as_user() {
        assert_eq!(
            check_non_root(&non_root(Some(0)), "1000", "web", "app"),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"web\", container: app)"
                    .into()
            )
        );
        assert_eq!(
            check_non_root(&non_root(Some(1000)), "root", "web", "app"),
            Ok(())
        );
        assert_eq!(
            check_non_root(&non_root(Some(1000)), "", "web", "app"),
            Ok(())
        );
    }

    #[test]
    fn non_root_from_the_image_user() {
        let root = Err(
            "container has runAsNonRoot and image will run as root (pod: \"web\", container: app)"
                .to_string(),
        );
        let s = non_root(None);
        for user in ["", "0", "root", "0:0", "root:root", "00", "0:1000"] {
            assert_eq!(check_non_root(&s, user, "web", "app"), root, "{user:?}");
        }
        for user in ["1000", "1000:0", "65534:65534", "1"] {
            assert_eq!(check_non_root(&s, user, "web", "app"), Ok(()), "{user:?}");
        }
        assert_eq!(
            check_non_root(&s, "nobody", "web", "app"),
            Err("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"web\", container: app)".into())
        );
        assert!(check_non_root(&s, "nginx:101", "web", "app")
            .unwrap_err()
            .contains("(nginx)"));
    }

    #[test]
    fn without_run_as_non_root_anything_goes() {
        let s = Security {
            run_as_user: Some(0),
            ..Default::default()
        };
        assert_eq!(check_non_root(&s, "", "web", "app"), Ok(()));
        assert_eq!(
            check_non_root(&Security::default(), "root", "web", "app"),
            Ok(())
        );
    }
}
