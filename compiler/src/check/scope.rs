//! Who and where, as the node names them: `user(…)`, and the scopes `cgroup(…)`,
//! `container(…)`, `k8s_namespace(…)` and `pod_label(…)`.
//!
//! None of these can be resolved when the policy is compiled: user names, containers and pods
//! exist on the node. The checker validates their syntax (so a typo is an error here, not a
//! scope that silently matches nothing there) and `guard-run` resolves them at load time and
//! keeps them current.

use super::Checker;
use super::subject::Item;
use std::collections::HashSet;

use crate::checked::{Scope, Subject};
use crate::diag::{Diagnostic, codes};
use crate::syntax::ast;

/// Longest user name (`LOGIN_NAME_MAX` is 256, but useradd and systemd cap names at 32).
const MAX_USER_NAME: usize = 32;

impl Checker<'_, '_> {
    /// `user(NAME_OR_LIST, …)`: the real uid is one of these users'. One atom per name (each
    /// is its own uid-table entry), or-ed.
    pub(super) fn users(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Subject> {
        let names = self.scope_strings(call, inside, "a user name", |text| {
            user_name_problem(text).map(|why| {
                (
                    codes::INVALID_USER,
                    format!("invalid user name `{text}`: {why}"),
                    "user names are letters, digits, `_`, `.` and `-` (not first), at most 32 bytes; for a numeric id write `uid(1000)`".to_string(),
                )
            })
        })?;
        let span = call.span;
        names
            .into_iter()
            .map(|name| Subject::User { name, span })
            .reduce(|a, b| Subject::Or(Box::new(a), Box::new(b)))
    }

    /// `container(…)`, `k8s_namespace(…)` and `pod_label(…)`.
    pub(super) fn scope(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Subject> {
        let function = call.function.name.as_str();
        let scope = match function {
            "container" => Scope::Container {
                names: self.scope_strings(call, inside, "a container name or id", |text| {
                    container_problem(text).map(|why| {
                        (
                            codes::INVALID_SCOPE,
                            format!("invalid container name `{text}`: {why}"),
                            "write the container's name as Kubernetes or docker shows it (`container(\"web\")`), or at least 12 hex digits of its id".to_string(),
                        )
                    })
                })?,
            },
            "k8s_namespace" => Scope::K8sNamespace {
                names: self.scope_strings(call, inside, "a namespace", |text| {
                    dns_label_problem(text).map(|why| {
                        let help = if text.bytes().any(|b| b.is_ascii_uppercase()) {
                            format!("namespaces are lower case: `\"{}\"`", text.to_ascii_lowercase())
                        } else {
                            "a namespace is a DNS label: lower-case letters, digits and `-`, at most 63 bytes".to_string()
                        };
                        (codes::INVALID_SCOPE, format!("invalid namespace `{text}`: {why}"), help)
                    })
                })?,
            },
            _ => Scope::PodLabel {
                labels: self
                    .scope_strings(call, inside, "a `key=value` label", |text| {
                        label_problem(text).map(|(why, help)| {
                            (
                                codes::INVALID_SCOPE,
                                format!("invalid pod label `{text}`: {why}"),
                                help,
                            )
                        })
                    })?
                    .into_iter()
                    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())))
                    .collect(),
            },
        };
        Some(Subject::Scope {
            scope,
            span: call.span,
        })
    }

    /// The quoted strings of a variadic call (lists expanded), each validated by `problem`
    /// (code, message, help), deduplicated; `None` after reporting every problem.
    fn scope_strings(
        &mut self,
        call: &ast::Call,
        inside: Option<&str>,
        what: &str,
        problem: impl Fn(&str) -> Option<(&'static str, String, String)>,
    ) -> Option<Vec<String>> {
        let function = call.function.name.clone();
        let (items, ok) = self.literal_args(call, inside);
        let before = self.error_count();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for item in &items {
            let Item { literal: lit, .. } = item;
            let text = lit.text.as_str();
            let diagnostic = if !lit.is_quoted() {
                Some(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!("`{function}` takes strings, not the path pattern `{text}`"),
                        lit.span,
                        "a path pattern",
                    )
                    .with_help(format!("quote it: `\"{text}\"`")),
                )
            } else {
                problem(text).map(|(code, message, help)| {
                    Diagnostic::error(code, message, lit.span, format!("not {what}"))
                        .with_help(help)
                })
            };
            match diagnostic {
                Some(d) => self.item_error(d, item, what),
                None if seen.insert(text.to_string()) => out.push(text.to_string()),
                None => {}
            }
        }
        (ok && self.error_count() == before).then_some(out)
    }
}

/// Why `text` is not a user name a node can have (`None` if it can be one).
fn user_name_problem(text: &str) -> Option<&'static str> {
    let body = text.strip_suffix('$').unwrap_or(text);
    if text.is_empty() {
        Some("it is empty")
    } else if text.len() > MAX_USER_NAME {
        Some("it is longer than 32 bytes")
    } else if text.starts_with('-') {
        Some("it starts with `-`")
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        Some("it is a number")
    } else if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Some("it has a character other than letters, digits, `_`, `.`, `-`")
    } else {
        None
    }
}

/// Container names (docker: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; Kubernetes: a DNS label, which
/// that includes) and id prefixes (hex).
fn container_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("it is empty")
    } else if text.len() > 253 {
        Some("it is longer than 253 bytes")
    } else if !text.as_bytes()[0].is_ascii_alphanumeric() {
        Some("it does not start with a letter or digit")
    } else if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Some("it has a character other than letters, digits, `_`, `.`, `-`")
    } else {
        None
    }
}

/// RFC 1123 label, as Kubernetes requires of namespace names and label-name parts.
fn dns_label_problem(text: &str) -> Option<&'static str> {
    let ok_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if text.is_empty() {
        Some("it is empty")
    } else if text.len() > 63 {
        Some("it is longer than 63 bytes")
    } else if !text.bytes().all(ok_byte) {
        Some("it has a character other than lower-case letters, digits and `-`")
    } else if text.starts_with('-') || text.ends_with('-') {
        Some("it starts or ends with `-`")
    } else {
        None
    }
}

/// A label name or value part: alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
fn label_part_ok(part: &str) -> bool {
    let b = part.as_bytes();
    part.len() <= 63
        && b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
}

/// `key=value` with Kubernetes' label syntax: key `[prefix/]name`, value possibly empty.
fn label_problem(text: &str) -> Option<(&'static str, String)> {
    let Some((key, value)) = text.split_once('=') else {
        return Some((
            "it has no `=`",
            format!("a pod label is written `key=value`, e.g. `pod_label(\"{text}=…\")`"),
        ));
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let syntax = "label keys are `[prefix/]name`, values at most 63 bytes; both use letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit".to_string();
    if name.is_empty() {
        Some(("its key is empty", syntax))
    } else if !label_part_ok(name) || prefix.is_some_and(|p| p.is_empty() || p.len() > 253) {
        Some(("its key is not a valid label key", syntax))
    } else if !label_part_ok(value) {
        Some(("its value is not a valid label value", syntax))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_node_syntax() {
        assert_eq!(user_name_problem("www-data"), None);
        assert_eq!(user_name_problem("machine$"), None);
        assert!(user_name_problem("1000").is_some());
        assert!(user_name_problem("-x").is_some());
        assert!(user_name_problem("a b").is_some());
        assert_eq!(container_problem("web"), None);
        assert_eq!(container_problem("3f2a9c1b7d0e"), None);
        assert!(container_problem("/web").is_some());
        assert_eq!(dns_label_problem("kube-system"), None);
        assert!(dns_label_problem("Payments").is_some());
        assert!(dns_label_problem("-x").is_some());
        assert_eq!(label_problem("app=web"), None);
        assert_eq!(label_problem("app.kubernetes.io/name=vault"), None);
        assert_eq!(label_problem("canary="), None);
        assert!(label_problem("app").is_some());
        assert!(label_problem("=web").is_some());
        assert!(label_problem("app=we b").is_some());
        assert!(label_problem("/app=web").is_some());
    }
}
