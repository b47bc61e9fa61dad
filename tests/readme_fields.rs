//! The README's "Every Pod field" table names every field of the Pod's
//! spec, of a container, and of the two security contexts, each with how
//! podvisor treats it (issue 16: honoured, refused with a reason, or
//! ignored on purpose with the reason). The fields come from k8s-openapi's
//! own schemas, so a field added by a k8s-openapi upgrade fails this test
//! until the README says what podvisor does with it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};

/// The property names of `T`'s schema.
fn fields<T: schemars::JsonSchema>() -> BTreeSet<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    let value = serde_json::to_value(schema).expect("a schema");
    value["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {value}"))
        .keys()
        .cloned()
        .collect()
}

/// The README's table of `prefix` fields: the first cell of each row
/// whose first cell is `` `prefix.field` ``, as `field`.
fn documented(readme: &str, prefix: &str) -> BTreeSet<String> {
    let start = readme
        .find("### Every Pod field")
        .expect("README has a section \"### Every Pod field\"");
    let section = &readme[start..];
    let end = section[4..].find("\n## ").map_or(section.len(), |e| e + 4);
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .filter_map(|(name, rest)| {
            // A row needs a treatment: a second cell with words.
            let cells: Vec<&str> = rest.split('|').collect();
            let treated = cells.get(1).is_some_and(|c| c.trim().len() > 3);
            let field = name.strip_prefix(prefix)?.strip_prefix('.')?;
            // `spec.securityContext.x` is not a `spec` row.
            (treated && !field.contains('.')).then(|| field.to_string())
        })
        .collect()
}

fn check(readme: &str, prefix: &str, wanted: BTreeSet<String>) -> Vec<String> {
    let have = documented(readme, prefix);
    let mut problems: Vec<String> = wanted
        .difference(&have)
        .map(|f| format!("missing: `{prefix}.{f}`"))
        .collect();
    problems.extend(
        have.difference(&wanted)
            .map(|f| format!("not a field: `{prefix}.{f}`")),
    );
    problems
}

#[test]
fn the_readme_says_what_podvisor_does_with_every_pod_field() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut problems = Vec::new();
    problems.extend(check(&readme, "spec", fields::<PodSpec>()));
    problems.extend(check(&readme, "container", fields::<Container>()));
    problems.extend(check(
        &readme,
        "spec.securityContext",
        fields::<PodSecurityContext>(),
    ));
    problems.extend(check(
        &readme,
        "container.securityContext",
        fields::<SecurityContext>(),
    ));
    assert!(
        problems.is_empty(),
        "README \"Every Pod field\" table:\n{}",
        problems.join("\n")
    );
    // The check reads real rows: the table is not empty.
    assert!(documented(&readme, "spec").len() > 30);
}

#[test]
fn the_schema_lists_fields_podvisor_is_known_to_honour() {
    // Guards `fields` itself: an empty or wrong schema read would make the
    // test above pass for the wrong reason.
    let spec = fields::<PodSpec>();
    for f in [
        "containers",
        "initContainers",
        "activeDeadlineSeconds",
        "hostNetwork",
    ] {
        assert!(spec.contains(f), "{f} not in {spec:?}");
    }
}
