//! The alert fields a case can check, from a simulated event: the names and values
//! `guard-run` renders for the same event (`runtime/src/alert.rs`, `event_fields` and
//! `action_word`). The compiler cannot depend on the runtime (aya, tokio), so the few fields a
//! case compares are rendered here from the same ABI; `tests/tests/sim_agreement.rs` checks
//! that they render as the runtime's.

use std::collections::BTreeMap;

use guard_ebpf::abi::{Action, EVENT_EXEC, EVENT_OPEN, Event, RuleMeta, event_flags};

/// `guard.action`'s word for an event.
pub fn action_word(event: &Event) -> &'static str {
    if event.flags & event_flags::KILL_FAILED != 0 {
        return "kill failed";
    }
    if event.flags & event_flags::NOT_ENFORCED != 0 {
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

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rendered fields of `event` decided by `rule`; `user` names the event's uid.
pub fn fields(event: &Event, rule: &RuleMeta, user: Option<&str>) -> BTreeMap<String, String> {
    let raw = event.cmdline_bytes();
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let mut cmdline: String = lossy(raw).replace('\0', " ");
    if event.flags & event_flags::CMDLINE_TRUNCATED != 0 {
        cmdline.push_str("...");
    }
    let path = lossy(event.path_bytes());
    let is_exec = event.kind == EVENT_EXEC;
    let evt_type = match event.kind {
        EVENT_OPEN => "open",
        EVENT_EXEC => "execve",
        _ => "",
    };
    let mut f: BTreeMap<String, String> = [
        ("evt.type", evt_type.to_string()),
        ("proc.name", lossy(event.comm_bytes())),
        ("proc.cmdline", cmdline),
        ("proc.pid", event.pid.to_string()),
        ("proc.ppid", event.ppid.to_string()),
        ("proc.pname", lossy(event.pcomm_bytes())),
        ("thread.tid", event.tid.to_string()),
        ("user.uid", event.uid.to_string()),
        ("group.gid", event.gid.to_string()),
        ("rule.name", rule.name.clone()),
        ("guard.action", action_word(event).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(u) = user {
        f.insert("user.name".into(), u.to_string());
    }
    let key = if is_exec { "proc.exepath" } else { "fd.name" };
    f.insert(key.into(), path);
    f
}
