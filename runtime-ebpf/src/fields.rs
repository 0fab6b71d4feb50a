//! The alert fields that come from a kernel event and the rule that decided it, by Falco field
//! name. `guard-run` adds the time, the user name and the container to render its alerts;
//! `guardc test` checks a case's expected fields against the same values, so a case and the
//! alert it stands for cannot render differently.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::abi::{Action, EVENT_EXEC, EVENT_OPEN, Event, RuleMeta, event_flags};

/// What guard did, as `guard.action` says it (empty for an action this build does not know).
pub fn action_word(event: &Event) -> &'static str {
    if event.flags & event_flags::KILL_FAILED != 0 {
        return "kill failed";
    }
    if event.flags & event_flags::NOT_ENFORCED != 0 {
        // Audit mode or the safety valve: judged, reported, not carried out.
        return match Action::from_u32(event.action) {
            Some(Action::Kill) => "would kill",
            Some(Action::Deny) => "would deny",
            _ => "",
        };
    }
    match Action::from_u32(event.action) {
        Some(Action::Kill) => "killed",
        Some(Action::Deny) => "denied",
        Some(Action::Alert) => "alerted",
        Some(Action::Allow) => "allowed",
        None => "",
    }
}

/// The command line as Falco shows it: arguments separated by spaces, `...` when guard read
/// only its start. The kernel side copies the raw argument area (NUL-separated,
/// NUL-terminated).
pub fn display_cmdline(event: &Event) -> String {
    let raw = event.cmdline_bytes();
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let joined: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    let mut s = String::from_utf8_lossy(&joined).into_owned();
    if event.flags & event_flags::CMDLINE_TRUNCATED != 0 {
        s.push_str("...");
    }
    s
}

/// The fields `event` and `rule` give. A field that does not apply to the event (`fd.name` of
/// an exec) is `null`, so that a template naming it renders `<NA>`.
pub fn event_fields(event: &Event, rule: &RuleMeta) -> BTreeMap<&'static str, Value> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let is_exec = event.kind == EVENT_EXEC;
    let evt_type = match event.kind {
        EVENT_OPEN => Value::from("open"),
        EVENT_EXEC => Value::from("execve"),
        _ => Value::Null,
    };
    let path = Value::from(lossy(event.path_bytes()));
    let action = match action_word(event) {
        "" => Value::Null,
        word => Value::from(word),
    };
    BTreeMap::from([
        ("evt.type", evt_type),
        ("proc.name", Value::from(lossy(event.comm_bytes()))),
        ("proc.cmdline", Value::from(display_cmdline(event))),
        ("proc.pid", Value::from(event.pid)),
        ("proc.ppid", Value::from(event.ppid)),
        ("proc.pname", Value::from(lossy(event.pcomm_bytes()))),
        ("thread.tid", Value::from(event.tid)),
        ("user.uid", Value::from(event.uid)),
        ("group.gid", Value::from(event.gid)),
        // An exec event's path is the program; an open event's the file.
        ("fd.name", if is_exec { Value::Null } else { path.clone() }),
        ("proc.exepath", if is_exec { path } else { Value::Null }),
        ("rule.name", Value::from(rule.name.clone())),
        ("guard.action", action),
    ])
}
