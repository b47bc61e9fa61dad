//! [`FieldError`], the one error of validation, with Kubernetes' wording,
//! and the name rules (RFC 1123, IANA service names) every validator shares
//! (this module's and `spec/`'s).

use std::fmt;

/// A validation failure at a Kubernetes-style field path, e.g. `spec.containers[1].name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Field path, e.g. `spec.containers[0].image`.
    pub path: String,
    /// What is wrong, e.g. `Required value` or `Duplicate value: "app"`.
    pub message: String,
}

/// Constructors with Kubernetes' wording, shared by every validator.
impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn required(path: impl Into<String>) -> Self {
        Self::new(path, "Required value")
    }

    /// `Required value: <detail>`.
    pub fn required_because(path: impl Into<String>, detail: &str) -> Self {
        Self::new(path, format!("Required value: {detail}"))
    }

    pub fn forbidden(path: impl Into<String>, detail: &str) -> Self {
        Self::new(path, format!("Forbidden: {detail}"))
    }

    pub fn not_found(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, format!("Not found: {value:?}"))
    }

    pub fn too_long(path: impl Into<String>, max_bytes: usize) -> Self {
        Self::new(
            path,
            format!("Too long: may not be more than {max_bytes} bytes"),
        )
    }

    pub fn invalid(path: impl Into<String>, value: impl fmt::Debug, detail: &str) -> Self {
        Self::new(path, format!("Invalid value: {value:?}: {detail}"))
    }

    pub fn duplicate(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, format!("Duplicate value: {value:?}"))
    }

    pub fn unsupported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let message = format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        );
        Self::new(path, message)
    }
}

/// `s` is lowercase alphanumerics and `-`, starting and ending with an alphanumeric.
fn is_label_shaped(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

/// An RFC 1123 label: at most 63 lowercase alphanumerics or `-`, starting and ending with
/// an alphanumeric (namespaces, container names).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// An RFC 1123 subdomain: at most 253 characters, `.`-separated labels of lowercase
/// alphanumerics or `-`, each starting and ending with an alphanumeric (pod names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// An IANA service name (port names): at most 15 lowercase alphanumerics or `-`, with at
/// least one letter, not starting or ending with `-`, and no `--`.
pub(super) fn is_iana_svc_name(s: &str) -> bool {
    s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The message for a port name that is no IANA service name.
pub(super) const PORT_NAME_MSG: &str = "must be a valid port name: at most 15 lowercase \
    alphanumeric characters or '-', with at least one letter, no leading, trailing or \
    doubled '-'";

pub(super) const DNS1123_LABEL_MSG: &str =
    "must be a lowercase RFC 1123 label: at most 63 lowercase \
    alphanumeric characters or '-', starting and ending with an alphanumeric character";
pub(super) const DNS1123_SUBDOMAIN_MSG: &str =
    "must be a lowercase RFC 1123 subdomain: at most 253 \
    lowercase alphanumeric characters, '-' or '.', each '.'-separated part starting and \
    ending with an alphanumeric character";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label() {
        for good in ["a", "a-b", "0", "a1", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        for good in ["a", "a.b", "a-1.b-2.c", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            "a-.b",
            "A.b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }
}
