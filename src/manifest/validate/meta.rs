//! `metadata`: name, namespace, labels and annotations; and the label,
//! qualified-name and label-value rules (`nodeSelector` and `fieldRef`
//! subscripts use them too), in apimachinery's wording.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::field_error::{
    is_dns1123_label, is_dns1123_subdomain, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use super::{Check, FieldError};

/// Most bytes of all annotations' keys and values together.
pub(super) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The name part of a qualified name and a non-empty label value match
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
    and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
    or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const PREFIX_MSG: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower \
    case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
    character (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of \
    alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
    character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
    '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Alphanumerics, `-`, `_`, `.`, with an alphanumeric at both ends.
fn is_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// Why `s` is no qualified name (`[prefix/]name`, as label and annotation
/// keys), or `None`.
pub(super) fn qualified_name_error(s: &str) -> Option<String> {
    let name = match s.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some("prefix part must be non-empty".into());
            }
            if !is_dns1123_subdomain(prefix) {
                return Some(PREFIX_MSG.into());
            }
            name
        }
        _ => {
            return Some(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
            ))
        }
    };
    if name.is_empty() {
        Some("name part must be non-empty".into())
    } else if name.len() > 63 {
        Some("name part must be no more than 63 characters".into())
    } else if !is_name_part(name) {
        Some(format!("name part {QUALIFIED_NAME_MSG}"))
    } else {
        None
    }
}

/// Why `s` is no label value, or `None`.
pub(super) fn label_value_error(s: &str) -> Option<&'static str> {
    if s.len() > 63 {
        Some("must be no more than 63 characters")
    } else if !s.is_empty() && !is_name_part(s) {
        Some(LABEL_VALUE_MSG)
    } else {
        None
    }
}

/// Labels (and `nodeSelector`): qualified-name keys, label values.
pub(super) fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Check {
    for (key, value) in labels.into_iter().flatten() {
        if let Some(msg) = qualified_name_error(key) {
            return Err(FieldError::invalid(path, key, &msg));
        }
        if let Some(msg) = label_value_error(value) {
            return Err(FieldError::invalid(path, value, msg));
        }
    }
    Ok(())
}

pub(super) fn validate_metadata(meta: &ObjectMeta) -> Check {
    match meta.name.as_deref() {
        None | Some("") => return Err(FieldError::required("metadata.name")),
        Some(name) if !is_dns1123_subdomain(name) => {
            let msg = DNS1123_SUBDOMAIN_MSG;
            return Err(FieldError::invalid("metadata.name", name, msg));
        }
        Some(_) => {}
    }
    if let Some(ns) = meta.namespace.as_deref() {
        if !ns.is_empty() && !is_dns1123_label(ns) {
            let msg = DNS1123_LABEL_MSG;
            return Err(FieldError::invalid("metadata.namespace", ns, msg));
        }
    }
    validate_labels(meta.labels.as_ref(), "metadata.labels")?;
    let path = "metadata.annotations";
    let mut size = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        if let Some(msg) = qualified_name_error(&key.to_ascii_lowercase()) {
            return Err(FieldError::invalid(path, key, &msg));
        }
        size += key.len() + value.len();
    }
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        return Err(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn labels(key: &str, value: &str) -> String {
        let pod = pod_with(|p| {
            p.metadata.labels = Some([(key.to_owned(), value.to_owned())].into());
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn generate_name_is_ignored() {
        let pod = pod_with(|p| p.metadata.generate_name = Some("web-".into()));
        assert!(validate_pod(&pod).is_ok());
        let err = validate_msg(&pod_with(|p| {
            p.metadata.generate_name = Some("web-".into());
            p.metadata.name = None;
        }));
        assert_eq!(err, "metadata.name: Required value");
    }

    #[test]
    fn pod_name_is_at_most_253_characters() {
        let ok = pod_with(|p| p.metadata.name = Some("a".repeat(253)));
        assert!(validate_pod(&ok).is_ok());
        let err = validate_msg(&pod_with(|p| p.metadata.name = Some("a".repeat(254))));
        assert!(err.starts_with("metadata.name: Invalid value: "), "{err}");
    }

    #[test]
    fn label_keys_are_qualified_names() {
        for good in ["app", "example.com/App_1", "a.b-c", &"k".repeat(63)] {
            assert_eq!(labels(good, "v"), "", "{good}");
        }
        let err = labels("bad key", "v");
        let start = "metadata.labels: Invalid value: \"bad key\": name part must consist of \
                     alphanumeric characters";
        assert!(err.starts_with(start), "{err}");
        let cases = [
            ("/app", "prefix part must be non-empty"),
            (
                "Example.com/app",
                ": prefix part a lowercase RFC 1123 subdomain",
            ),
            ("a/b/c", ": a qualified name must consist of"),
            (
                &"k".repeat(64),
                "name part must be no more than 63 characters",
            ),
            ("example.com/", "name part must be non-empty"),
        ];
        for (key, expected) in cases {
            let err = labels(key, "v");
            assert!(err.contains(expected), "{key}: {err}");
        }
    }

    #[test]
    fn label_values_are_63_characters_of_a_z_0_9_dot_dash_underscore() {
        for good in ["", "v1", "My_Value.2-x", &"v".repeat(63)] {
            assert_eq!(labels("app", good), "", "{good}");
        }
        assert_eq!(
            labels("app", &"v".repeat(64)),
            format!(
                "metadata.labels: Invalid value: {:?}: must be no more than 63 characters",
                "v".repeat(64)
            )
        );
        let err = labels("app", "-v");
        let start = "metadata.labels: Invalid value: \"-v\": a valid label must be an empty string";
        assert!(err.starts_with(start), "{err}");
    }

    #[test]
    fn annotation_keys_are_qualified_names_in_any_case() {
        let annotate = |key: &str| {
            validate_pod(&pod_with(|p| {
                let value = "any value at all".to_owned();
                p.metadata.annotations = Some([(key.to_owned(), value)].into());
            }))
        };
        assert!(annotate("Example.COM/Some_Key").is_ok());
        let err = annotate("no spaces").expect_err("invalid").to_string();
        let start = "metadata.annotations: Invalid value: \"no spaces\": name part";
        assert!(err.starts_with(start), "{err}");
    }

    #[test]
    fn annotations_are_at_most_256_kib_in_total() {
        let annotate = |len: usize| {
            validate_pod(&pod_with(|p| {
                p.metadata.annotations = Some([("k".to_owned(), "v".repeat(len))].into());
            }))
        };
        assert!(annotate(256 * 1024 - 1).is_ok());
        assert_eq!(
            annotate(256 * 1024).expect_err("too long").to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }
}
