//! `$(VAR)` expansion, exactly as Kubernetes does it, for `value`s and for
//! `command` and `args`.

use std::collections::HashMap;

/// Expands `$(VAR)` references in `s` exactly as Kubernetes does
/// (`third_party/forked/golang/expansion`):
///
/// - `$(NAME)` becomes `vars(NAME)`; when that is `None` the reference stays
///   as written;
/// - `$$` is an escaped `$` (so `$$(A)` gives `$(A)`);
/// - `$(` with no `)` after it, a `$` before any other character, and a `$`
///   at the end are kept literally. There is no nesting: the name ends at the
///   first `)`.
pub fn expand(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.as_bytes().first() {
            // A `$` at the very end.
            None => {
                out.push('$');
                rest = after;
            }
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some(b'(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match vars(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&rest[at..at + 1 + close + 1]),
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            // Not a reference: keep the `$` and go on from the next character.
            Some(_) => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands `command` or `args` against the container's final environment
/// (later definitions of a name win), as the kubelet does.
pub fn expand_args(list: &[String], env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| map.get(name).map(|v| v.to_string());
    list.iter().map(|s| expand(s, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::pairs;
    use super::*;

    /// Kubernetes' own expansion table (expand_test.go).
    #[test]
    fn kubernetes_expansion_table() {
        let vars: HashMap<&str, &str> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .collect();
        let lookup = |n: &str| vars.get(n).map(|v| v.to_string());
        let cases = [
            ("$(VAR_A)", "A"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("___$(VAR_B)___", "___B___"),
            ("___$(VAR_C)", "___C"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
            ("f00__(VAR_A)__", "f00__(VAR_A)__"),
            ("$?_boo_$!", "$?_boo_$!"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$VAR_A)", "$VAR_A)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_B)_______$(A", "B_______$(A"),
            ("$(VAR_C)_______$(", "C_______$("),
            ("$(VAR_A)foobarzab$", "Afoobarzab$"),
            ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
            ("--$($($($($--", "--$($($($($--"),
            ("$($($($($--foo$(", "$($($($($--foo$("),
            ("foo0--$($($($(", "foo0--$($($($("),
            ("$(foo$$var)", "$(foo$$var)"),
            ("\n", "\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &lookup), expected, "input {input:?}");
        }
    }

    #[test]
    fn expansion_edge_cases() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("", &lookup), "");
        assert_eq!(expand("$", &lookup), "$");
        assert_eq!(expand("$$", &lookup), "$");
        assert_eq!(expand("$$$", &lookup), "$$");
        assert_eq!(expand("$(", &lookup), "$(");
        assert_eq!(expand("$()", &lookup), "$()");
        assert_eq!(expand("$(A)$(A)", &lookup), "xx");
        assert_eq!(expand("é$(A)ü$é", &lookup), "éxü$é");
        assert_eq!(expand("$(é)", &|n| (n == "é").then(|| "ok".into())), "ok");
        // The value substituted is not expanded again.
        assert_eq!(expand("$(A)", &|_| Some("$(A)".into())), "$(A)");
    }

    #[test]
    fn args_expand_against_the_final_env_later_wins() {
        let env = pairs(&[("A", "1"), ("B", "two words"), ("A", "3")]);
        let args: Vec<String> = ["echo", "$(A)", "$(B)", "$$(A)", "$(C)", "${A}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_args(&args, &env),
            vec!["echo", "3", "two words", "$(A)", "$(C)", "${A}"]
        );
        assert!(expand_args(&[], &env).is_empty());
    }
}
