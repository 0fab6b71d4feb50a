//! The two user-space steps `guardc test` shares with `guard-run` (which the compiler cannot
//! depend on): the alert fields a case checks (`guard_ebpf::fields`) and the scope bits of a
//! container (`Scope::holds_for`). Each side wraps them in its own types (the runtime adds
//! time, user and container fields; cases describe containers their own way): compared here
//! on the same input. No kernel needed.

use std::collections::BTreeMap;

use guard_compiler::cases::{fields, scopes};
use guard_ebpf::abi::{self, Action, Event, RuleMeta, Scope};
use guard_runtime::alert::{ContainerFields, event_fields};
use guard_runtime::containers::ContainerInfo;
use serde_json::Value;

fn event(kind: u32, action: Action, flags: u32, cmdline: &[u8], path: &[u8]) -> Event {
    // SAFETY: Event is repr(C) of integers and byte arrays; all zeroes is a valid value.
    let mut e: Event = unsafe { std::mem::zeroed() };
    e.kind = kind;
    e.action = action as u32;
    e.flags = flags;
    (e.pid, e.tid, e.ppid, e.uid, e.gid) = (4242, 4243, 4200, 65534, 65534);
    e.comm[..3].copy_from_slice(b"cat");
    e.pcomm[..7].copy_from_slice(b"nsenter");
    e.cmdline[..cmdline.len()].copy_from_slice(cmdline);
    e.cmdline_len = cmdline.len() as u32;
    e.path[..path.len()].copy_from_slice(path);
    e.path_len = path.len() as u32;
    e
}

fn rule() -> RuleMeta {
    RuleMeta {
        id: 0,
        name: "Vault secret read".into(),
        operation: "read".into(),
        action: Action::Kill,
        priority: "Critical".into(),
        output: "x".into(),
        tags: Vec::new(),
        patterns: Vec::new(),
        line: 1,
        column: 1,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[test]
fn the_fields_a_case_checks_are_the_ones_guard_run_renders() {
    let cmd = b"cat\0/mnt/secrets/db-password\0";
    let path = b"/mnt/secrets/db-password";
    let flags = abi::event_flags::CMDLINE_TRUNCATED;
    for e in [
        event(abi::EVENT_OPEN, Action::Kill, 0, cmd, path),
        event(abi::EVENT_OPEN, Action::Alert, flags, cmd, path),
        event(abi::EVENT_EXEC, Action::Deny, 0, cmd, b"/usr/bin/cat"),
        event(
            abi::EVENT_OPEN,
            Action::Kill,
            abi::event_flags::NOT_ENFORCED,
            cmd,
            path,
        ),
        event(
            abi::EVENT_EXEC,
            Action::Kill,
            abi::event_flags::KILL_FAILED,
            cmd,
            b"/usr/bin/cat",
        ),
    ] {
        let ours = fields::fields(&e, &rule(), Some("nobody"));
        let theirs = event_fields(
            &e,
            &rule(),
            0,
            Some("nobody".into()),
            &ContainerFields::default(),
        );
        assert!(ours.len() >= 13, "{ours:?}");
        for (k, v) in &ours {
            let t = theirs.get(k.as_str()).and_then(text);
            assert_eq!(
                t.as_ref(),
                Some(v),
                "{k}: guard-run renders {t:?}, guardc test {v:?}"
            );
        }
        // And no field guard-run renders for the event is missing from the case's view.
        for (k, v) in &theirs {
            let is_container = k.starts_with("container.") || k.starts_with("k8s.");
            if v.is_null() || is_container || *k == "evt.time" {
                continue;
            }
            assert!(ours.contains_key(*k), "guardc test lacks {k}");
        }
    }
}

#[test]
fn container_scopes_match_as_guard_run_matches_them() {
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let scopes_under_test = [
        Scope::Container {
            names: vec!["db".into()],
        },
        Scope::Container {
            names: vec!["0123456789ab".into()],
        },
        Scope::Container {
            names: vec!["0123456789a".into()],
        },
        Scope::Container {
            names: vec!["0123456789ax".into()],
        },
        Scope::K8sNamespace {
            names: vec!["prod".into(), "stage".into()],
        },
        Scope::PodLabel {
            labels: vec![("app".into(), "web".into())],
        },
        Scope::PodLabel {
            labels: vec![("app".into(), "api".into())],
        },
        Scope::Cgroup {
            path: "/kubepods".into(),
        },
    ];
    let containers = [
        (Some("db"), Some("prod"), Some(labels.clone())),
        (Some("cache"), Some("dev"), None),
        (None, Some("stage"), Some(labels)),
        (None, None, None),
    ];
    for (name, ns, labels) in containers {
        let info = ContainerInfo {
            id: id.into(),
            name: name.map(str::to_string),
            pod_namespace: ns.map(str::to_string),
            pod_labels: labels.clone(),
            ..ContainerInfo::default()
        };
        let ours = scopes::Container {
            id: id.into(),
            name: name.map(str::to_string),
            namespace: ns.map(str::to_string),
            labels: labels.unwrap_or_default(),
        };
        for s in &scopes_under_test {
            assert_eq!(
                scopes::container_matches(s, &ours),
                guard_runtime::scope::container_matches(s, id, Some(&info)),
                "{s:?} for {ours:?}"
            );
        }
    }
}
