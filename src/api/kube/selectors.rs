//! `labelSelector` and `fieldSelector` as the API server reads them.
//!
//! Label selectors follow apimachinery's `labels.Parse`: a lexer over bytes
//! (whitespace separates, `= == != ! ( ) , < >` are operators, `in` and
//! `notin` are keywords except where a value is expected), then one
//! requirement per comma. Keys and values are validated as label keys and
//! values, so a selector the API server refuses is refused here too.
//!
//! Field selectors follow `fields.ParseSelector`: terms split on unescaped
//! commas, each `field!=value`, `field==value` or `field=value` (the first
//! operator found wins), values unescaped (`\\`, `\,`, `\=`). What a field
//! means is per kind: [`pod_field`] and [`event_field`] give the values the
//! API server selects on, and `None` for a field it does not support.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Event, Pod};

use crate::model::PodExt;

// ---------------------------------------------------------------------------
// Label selectors

/// A parsed `labelSelector`: all requirements must hold. The empty selector
/// matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: LabelOp,
    values: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelOp {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; errors read like the API
    /// server's (`unable to parse requirement: ...`, `found 'x', expected: ...`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let tokens = lex(s);
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = p.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            LabelOp::Equals | LabelOp::In => value.is_some_and(|v| self.values.contains(v)),
            LabelOp::NotEquals | LabelOp::NotIn => !value.is_some_and(|v| self.values.contains(v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                // Both sides must be integers; a label that is not one never
                // matches (the bound was checked at parse time).
                let (Some(have), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values
                        .iter()
                        .next()
                        .and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                match self.op {
                    LabelOp::GreaterThan => have > bound,
                    _ => have < bound,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    /// `!`
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    End,
    /// A run of operator characters that is no operator.
    Error(String),
}

impl Token {
    /// The text the API server quotes in its errors.
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) | Token::Error(s) => s,
            Token::DoesNotExist => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }

    /// Where a value is expected, `in` and `notin` are plain words.
    fn in_value_context(self) -> Token {
        match self {
            Token::In => Token::Identifier("in".into()),
            Token::NotIn => Token::Identifier("notin".into()),
            t => t,
        }
    }
}

fn symbol(s: &[u8]) -> Option<Token> {
    Some(match s {
        b"!" => Token::DoesNotExist,
        b"=" => Token::Equals,
        b"==" => Token::DoubleEquals,
        b"!=" => Token::NotEquals,
        b">" => Token::GreaterThan,
        b"<" => Token::LessThan,
        b"(" => Token::OpenPar,
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        _ => return None,
    })
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The whole token stream, ending in [`Token::End`].
fn lex(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i == b.len() {
            out.push(Token::End);
            return out;
        }
        if is_special(b[i]) {
            // The longest run of operator characters that still spells an
            // operator: `!=` is one token, `=(` is two.
            let start = i;
            let mut best: Option<(Token, usize)> = None;
            let mut j = i;
            while j < b.len() && is_special(b[j]) {
                j += 1;
                match symbol(&b[start..j]) {
                    Some(t) => best = Some((t, j)),
                    None if best.is_some() => break,
                    None => {}
                }
            }
            match best {
                Some((t, end)) => {
                    out.push(t);
                    i = end;
                }
                None => {
                    let run = String::from_utf8_lossy(&b[start..j]);
                    out.push(Token::Error(format!(
                        "error expected: keyword found '{run}'"
                    )));
                    i = j;
                }
            }
        } else {
            let start = i;
            while i < b.len() && !is_special(b[i]) && !is_space(b[i]) {
                i += 1;
            }
            let word = &s[start..i];
            out.push(match word {
                "in" => Token::In,
                "notin" => Token::NotIn,
                w => Token::Identifier(w.to_string()),
            });
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        self.tokens[self.pos.min(self.tokens.len() - 1)].clone()
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        self.pos += 1;
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek().in_value_context() {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    match self.next().in_value_context() {
                        Token::End => return Ok(out),
                        Token::Comma => match self.peek().in_value_context() {
                            Token::Identifier(_) | Token::DoesNotExist => {}
                            t => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ))
                            }
                        },
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ))
                        }
                    }
                }
                Token::End => return Ok(out),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut negated = false;
        let mut t = self.next().in_value_context();
        if t == Token::DoesNotExist {
            negated = true;
            t = self.next().in_value_context();
        }
        let Token::Identifier(key) = t else {
            return Err(format!("found '{}', expected: identifier", t.literal()));
        };
        validate_key(&key)?;
        let bare = matches!(self.peek().in_value_context(), Token::End | Token::Comma);
        if negated || bare {
            let op = if negated {
                LabelOp::DoesNotExist
            } else {
                LabelOp::Exists
            };
            return Ok(Requirement {
                key,
                op,
                values: BTreeSet::new(),
            });
        }
        let op = match self.next() {
            Token::In => LabelOp::In,
            Token::NotIn => LabelOp::NotIn,
            Token::Equals | Token::DoubleEquals => LabelOp::Equals,
            Token::NotEquals => LabelOp::NotEquals,
            Token::GreaterThan => LabelOp::GreaterThan,
            Token::LessThan => LabelOp::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ))
            }
        };
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        for v in &values {
            validate_value(key.as_str(), v)?;
        }
        if matches!(op, LabelOp::GreaterThan | LabelOp::LessThan)
            && values.iter().any(|v| v.parse::<i64>().is_err())
        {
            return Err(format!(
                "values[0]: Invalid value: \"{}\": for 'Gt', 'Lt' operators, the value must be an integer",
                values.iter().next().map(String::as_str).unwrap_or_default()
            ));
        }
        Ok(Requirement { key, op, values })
    }

    /// `( a, b, ... )`, where empty entries are the empty value.
    fn value_set(&mut self) -> Result<BTreeSet<String>, String> {
        let t = self.next().in_value_context();
        if t != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        let mut set = BTreeSet::new();
        match self.peek().in_value_context() {
            Token::ClosedPar => {
                self.next();
                set.insert(String::new());
                return Ok(set);
            }
            Token::Identifier(_) | Token::Comma => {}
            t => {
                return Err(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    t.literal()
                ))
            }
        }
        loop {
            match self.next().in_value_context() {
                Token::Identifier(v) => {
                    set.insert(v);
                    match self.peek().in_value_context() {
                        Token::Comma => continue,
                        Token::ClosedPar => {
                            self.next();
                            return Ok(set);
                        }
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    // `(,a`, `a,,b` and `a,)` all hold the empty value.
                    match self.peek().in_value_context() {
                        Token::ClosedPar => {
                            self.next();
                            set.insert(String::new());
                            return Ok(set);
                        }
                        Token::Comma => {
                            set.insert(String::new());
                        }
                        _ if set.is_empty() => {
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }

    /// The one value after `=`, `==`, `!=`, `>` or `<`; nothing is the empty value.
    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.peek().in_value_context(), Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.next().in_value_context() {
            Token::Identifier(v) => Ok(BTreeSet::from([v])),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

const NAME_REGEX: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the label name and value shape.
fn is_label_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain of at most 253
/// characters, name at most 63.
fn validate_key(key: &str) -> Result<(), String> {
    // The API server parses without a field path, so its errors start `<nil>: `.
    let invalid = |why: String| Err(format!("<nil>: Invalid value: \"{key}\": {why}"));
    let (prefix, name) = match key.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return invalid(format!(
                "a qualified name {NAME_RULE} (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{NAME_REGEX}') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ))
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return invalid("prefix part must be non-empty".into());
        }
        if prefix.len() > 253 {
            return invalid("prefix part must be no more than 253 characters".into());
        }
        if !crate::manifest::is_dns1123_subdomain(prefix) {
            return invalid("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into());
        }
    }
    if name.is_empty() {
        return invalid("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return invalid("name part must be no more than 63 characters".into());
    }
    if !is_label_word(name) {
        return invalid(format!(
            "name part {NAME_RULE} (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{NAME_REGEX}')"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of the label shape.
fn validate_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let invalid = |why: &str| Err(format!("[{key}]: Invalid value: \"{value}\": {why}"));
    if value.len() > 63 {
        return invalid("must be no more than 63 characters");
    }
    if !is_label_word(value) {
        return invalid(&format!(
            "a valid label must be an empty string or {} (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '({NAME_REGEX})?')",
            NAME_RULE.replacen("must ", "", 1)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Field selectors

/// A parsed `fieldSelector`: every term must hold. The empty selector
/// matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    /// `=`/`==` when true, `!=` when false.
    equal: bool,
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        let mut parts = split_unescaped_commas(s);
        parts.sort_unstable();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, raw)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                value: unescape(raw)?,
                equal: op != "!=",
            });
        }
        Ok(Self { terms })
    }

    /// The fields the terms name, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// `Err("field label not supported: <field>")` for the first field not
    /// in `supported` ([`POD_FIELDS`], [`EVENT_FIELDS`]): the API server
    /// refuses such a selector even when there is nothing to list.
    pub fn check(&self, supported: &[&str]) -> Result<(), String> {
        match self.fields().find(|f| !supported.contains(f)) {
            Some(f) => Err(unsupported(f)),
            None => Ok(()),
        }
    }

    /// Whether the object whose fields `get` reads satisfies every term; an
    /// error names the first field `get` does not support.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
        let mut all = true;
        for t in &self.terms {
            let have = get(&t.field).ok_or_else(|| unsupported(&t.field))?;
            all &= (have == t.value) == t.equal;
        }
        Ok(all)
    }

    /// The value a `field=value` (or `==`) term pins `field` to, if any: a
    /// route can look one object up instead of filtering a list.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

fn unsupported(field: &str) -> String {
    format!("field label not supported: {field}")
}

/// Splits on commas not escaped by a backslash.
fn split_unescaped_commas(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `(field, operator, raw value)` at the first position where `!=`, `==` or
/// `=` starts.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Undoes `\\`, `\,` and `\=`; an unescaped `,` or `=` or any other escape
/// is an error.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ))
                }
                None => return Err("invalid field selector: invalid escape sequence: \\".into()),
            },
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {c}"
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The pod fields the API server selects on (its field label conversion for
/// `v1` `Pod`), as it renders them: an unset field is the empty string.
pub const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// The value of `field` on `pod` for a field selector, `None` if the field
/// is not one the API server supports for pods.
pub fn pod_field(pod: &Pod, field: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    Some(match field {
        "metadata.name" => pod.name().to_string(),
        "metadata.namespace" => pod.namespace().to_string(),
        "spec.nodeName" => s(spec.and_then(|s| s.node_name.as_ref())),
        "spec.restartPolicy" => s(spec.and_then(|s| s.restart_policy.as_ref())),
        "spec.schedulerName" => s(spec.and_then(|s| s.scheduler_name.as_ref())),
        "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.phase" => s(status.and_then(|s| s.phase.as_ref())),
        "status.podIP" => pod_ip(pod).unwrap_or_default(),
        "status.nominatedNodeName" => s(status.and_then(|s| s.nominated_node_name.as_ref())),
        _ => return None,
    })
}

/// The pod's primary IP: `status.podIPs[0]`, else `status.podIP` (the API
/// server keeps the two in step; a hand-made status may set only one).
pub(crate) fn pod_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .or_else(|| status.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
}

/// The event fields the API server selects on (its field label conversion
/// for `v1` `Event`).
pub const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.name",
    "metadata.namespace",
];

/// The value of `field` on `ev` for a field selector, `None` if the field
/// is not one the API server supports for events. As there, `source` is
/// `source.component` and `reportingComponent` is `reportingController`.
pub fn event_field(ev: &Event, field: &str) -> Option<String> {
    let o = &ev.involved_object;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(match field {
        "involvedObject.kind" => s(&o.kind),
        "involvedObject.namespace" => s(&o.namespace),
        "involvedObject.name" => s(&o.name),
        "involvedObject.uid" => s(&o.uid),
        "involvedObject.apiVersion" => s(&o.api_version),
        "involvedObject.resourceVersion" => s(&o.resource_version),
        "involvedObject.fieldPath" => s(&o.field_path),
        "reason" => s(&ev.reason),
        "reportingComponent" => s(&ev.reporting_component),
        "source" => ev
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .unwrap_or_default(),
        "type" => s(&ev.type_),
        "metadata.name" => s(&ev.metadata.name),
        "metadata.namespace" => s(&ev.metadata.namespace),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference, PodIP, PodSpec, PodStatus};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).expect_err(s)
    }

    #[test]
    fn empty_label_selector_matches_everything() {
        for s in ["", "  ", "\t"] {
            let l = sel(s);
            assert!(l.is_empty());
            assert!(l.matches(&labels(&[])));
            assert!(l.matches(&labels(&[("app", "web")])));
        }
    }

    #[test]
    fn equals_and_double_equals_need_the_value() {
        for s in ["app=web", "app==web", " app = web "] {
            let l = sel(s);
            assert!(l.matches(&labels(&[("app", "web")])), "{s}");
            assert!(!l.matches(&labels(&[("app", "db")])), "{s}");
            assert!(!l.matches(&labels(&[])), "{s}");
        }
    }

    #[test]
    fn not_equals_matches_other_values_and_absence() {
        let l = sel("app!=web");
        assert!(!l.matches(&labels(&[("app", "web")])));
        assert!(l.matches(&labels(&[("app", "db")])));
        assert!(l.matches(&labels(&[])));
    }

    #[test]
    fn in_matches_any_listed_value() {
        let l = sel("tier in (front, back)");
        assert!(l.matches(&labels(&[("tier", "front")])));
        assert!(l.matches(&labels(&[("tier", "back")])));
        assert!(!l.matches(&labels(&[("tier", "cache")])));
        assert!(!l.matches(&labels(&[])));
    }

    #[test]
    fn notin_matches_unlisted_values_and_absence() {
        let l = sel("tier notin (front,back)");
        assert!(!l.matches(&labels(&[("tier", "front")])));
        assert!(l.matches(&labels(&[("tier", "cache")])));
        assert!(l.matches(&labels(&[])));
    }

    #[test]
    fn bare_key_is_exists_and_bang_key_is_not_exists() {
        let l = sel("app");
        assert!(l.matches(&labels(&[("app", "")])));
        assert!(!l.matches(&labels(&[("other", "x")])));
        let l = sel("!app");
        assert!(!l.matches(&labels(&[("app", "web")])));
        assert!(l.matches(&labels(&[("other", "x")])));
    }

    #[test]
    fn requirements_are_anded() {
        let l = sel("app=web,tier in (front),!canary,env");
        assert!(l.matches(&labels(&[("app", "web"), ("tier", "front"), ("env", "p")])));
        assert!(!l.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!l.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "p"),
            ("canary", "1"),
        ])));
    }

    #[test]
    fn empty_values_are_values() {
        let l = sel("app=");
        assert!(l.matches(&labels(&[("app", "")])));
        assert!(!l.matches(&labels(&[("app", "x")])));
        let l = sel("app in ()");
        assert!(l.matches(&labels(&[("app", "")])));
        let l = sel("x in (foo,,baz)");
        assert!(l.matches(&labels(&[("x", "")])));
        assert!(l.matches(&labels(&[("x", "baz")])));
    }

    #[test]
    fn in_and_notin_are_words_where_a_value_is_expected() {
        let l = sel("in=notin");
        assert!(l.matches(&labels(&[("in", "notin")])));
        let l = sel("x in (in,notin)");
        assert!(l.matches(&labels(&[("x", "notin")])));
    }

    #[test]
    fn greater_and_less_than_compare_integers() {
        let l = sel("replicas>2");
        assert!(l.matches(&labels(&[("replicas", "3")])));
        assert!(!l.matches(&labels(&[("replicas", "2")])));
        assert!(!l.matches(&labels(&[("replicas", "many")])));
        assert!(!l.matches(&labels(&[])));
        assert!(sel("replicas<2").matches(&labels(&[("replicas", "-1")])));
        assert!(err("replicas>two").contains("must be an integer"));
    }

    #[test]
    fn prefixed_keys_parse() {
        let l = sel("app.kubernetes.io/name=web");
        assert!(l.matches(&labels(&[("app.kubernetes.io/name", "web")])));
    }

    #[test]
    fn errors_read_like_the_api_server() {
        assert_eq!(
            err("app web"),
            "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("app=web,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("=web"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("app in web"),
            "unable to parse requirement: found 'web' expected: '('"
        );
        assert_eq!(
            err("app in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            err("app = ="),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            err("!app=web"),
            "found '=', expected: ',' or 'end of string'"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        assert_eq!(
            err("-app=x"),
            "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(err("a/b/c").contains("qualified name"));
        assert!(err("Example.com/app").contains("prefix part"));
        assert!(err("/app").contains("prefix part must be non-empty"));
        assert!(err(&format!("{}=x", "k".repeat(64))).contains("no more than 63"));
        assert!(err("app=-web").contains("[app]: Invalid value: \"-web\""));
        assert!(err(&format!("app={}", "v".repeat(64))).contains("no more than 63"));
    }

    #[test]
    fn operator_runs_that_are_no_operator_are_errors() {
        assert_eq!(
            err("app=!web"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert!(err("app<>1").contains("found '>'"));
    }

    // Field selectors

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn fields(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |f| {
            pairs
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn empty_field_selector_matches_everything() {
        let f = fsel("");
        assert!(f.is_empty());
        assert_eq!(f.matches(fields(&[])), Ok(true));
    }

    #[test]
    fn field_equals_double_equals_and_not_equals() {
        let get = fields(&[("status.phase", "Running"), ("metadata.name", "web")]);
        assert_eq!(fsel("status.phase=Running").matches(&get), Ok(true));
        assert_eq!(fsel("status.phase==Running").matches(&get), Ok(true));
        assert_eq!(fsel("status.phase=Pending").matches(&get), Ok(false));
        assert_eq!(fsel("status.phase!=Running").matches(&get), Ok(false));
        assert_eq!(fsel("status.phase!=Failed").matches(&get), Ok(true));
        assert_eq!(
            fsel("metadata.name=web,status.phase!=Failed").matches(&get),
            Ok(true)
        );
        assert_eq!(
            fsel("metadata.name=db,status.phase!=Failed").matches(&get),
            Ok(false)
        );
    }

    #[test]
    fn field_value_may_be_empty_and_escaped() {
        let get = fields(&[("spec.nodeName", ""), ("reason", "a,b=c\\")]);
        assert_eq!(fsel("spec.nodeName=").matches(&get), Ok(true));
        assert_eq!(fsel("reason=a\\,b\\=c\\\\").matches(&get), Ok(true));
    }

    #[test]
    fn field_selector_parse_errors() {
        assert_eq!(
            FieldSelector::parse("a=b,nonsense"),
            Err("invalid selector: 'a=b,nonsense'; can't understand 'nonsense'".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b=c"),
            Err("invalid field selector: unescaped character in value: =".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b\\x"),
            Err("invalid field selector: invalid escape sequence: \\x".into())
        );
    }

    #[test]
    fn an_unsupported_field_is_an_error_in_the_api_server_words() {
        let f = fsel("metadata.name=web,spec.foo=bar");
        let pod = crate::testing::pod("web").container("app").build_pod();
        assert_eq!(
            f.matches(|field| pod_field(&pod, field)),
            Err("field label not supported: spec.foo".into())
        );
        assert_eq!(
            f.check(POD_FIELDS),
            Err("field label not supported: spec.foo".into())
        );
        assert_eq!(fsel("status.phase=Running").check(POD_FIELDS), Ok(()));
        assert_eq!(fsel("reason=Started").check(EVENT_FIELDS), Ok(()));
    }

    #[test]
    fn exact_match_is_found_for_lookups() {
        let f = fsel("metadata.name=web,status.phase!=Failed");
        assert_eq!(f.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(f.requires_exact_match("status.phase"), None);
        assert_eq!(
            f.fields().collect::<Vec<_>>(),
            ["metadata.name", "status.phase"]
        );
    }

    #[test]
    fn pod_fields_are_the_api_server_ones() {
        let pod = crate::testing::pod("web")
            .namespace("shop")
            .container("app")
            .with(|p| {
                let spec = p.spec.get_or_insert_with(PodSpec::default);
                spec.node_name = Some("node-1".into());
                spec.scheduler_name = Some("default-scheduler".into());
                spec.service_account_name = Some("default".into());
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    pod_ips: Some(vec![PodIP {
                        ip: "10.0.0.7".into(),
                    }]),
                    ..Default::default()
                });
            })
            .build_pod();
        let got: Vec<_> = POD_FIELDS
            .iter()
            .map(|f| pod_field(&pod, f).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "web",
                "shop",
                "node-1",
                "Always",
                "default-scheduler",
                "default",
                "Running",
                "10.0.0.7",
                ""
            ]
        );
        assert_eq!(pod_field(&pod, "spec.containers"), None);
        assert_eq!(pod_field(&pod, "metadata.uid"), None);
    }

    #[test]
    fn pod_ip_falls_back_to_the_singular_field() {
        let pod = crate::testing::pod("web")
            .with(|p| {
                p.status = Some(PodStatus {
                    pod_ip: Some("10.0.0.8".into()),
                    ..Default::default()
                })
            })
            .build_pod();
        assert_eq!(pod_field(&pod, "status.podIP").as_deref(), Some("10.0.0.8"));
        let bare = crate::testing::pod("web").build_pod();
        assert_eq!(pod_field(&bare, "status.podIP").as_deref(), Some(""));
    }

    fn event() -> Event {
        Event {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web.1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                field_path: Some("spec.containers{app}".into()),
                ..Default::default()
            },
            reason: Some("Started".into()),
            type_: Some("Normal".into()),
            reporting_component: Some("podvisor".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-1".into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn event_fields_are_the_api_server_ones() {
        let ev = event();
        let got: Vec<_> = EVENT_FIELDS
            .iter()
            .map(|f| event_field(&ev, f).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "Pod",
                "default",
                "web",
                "u-1",
                "v1",
                "",
                "spec.containers{app}",
                "Started",
                "podvisor",
                "kubelet",
                "Normal",
                "web.1",
                "default"
            ]
        );
        assert_eq!(event_field(&ev, "message"), None);
    }

    #[test]
    fn kubectl_describe_selector_finds_the_pod_events() {
        let f = fsel(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u-1,involvedObject.kind=Pod",
        );
        let ev = event();
        assert_eq!(f.matches(|x| event_field(&ev, x)), Ok(true));
        let mut other = event();
        other.involved_object.uid = Some("u-2".into());
        assert_eq!(f.matches(|x| event_field(&other, x)), Ok(false));
    }
}
