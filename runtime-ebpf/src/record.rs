//! Recorded activity: what `guard-run load --record FILE` writes, one JSON object per line, and
//! what `guardc test --replay FILE` reads back.
//!
//! A record holds what a policy's verdict depends on, so that another policy can be judged
//! against it: the operation, the path, and the process with its ancestry (command lines,
//! executables, users, terminals, pid namespaces, cgroups), root first. It also holds what the
//! policy loaded at the time decided, the "what happened" a replay compares with.

use serde::{Deserialize, Serialize};

use crate::abi::{self, Action, Backend, Event, event_flags};

/// The record format's version, in every line: a reader refuses lines of another.
pub const RECORD_VERSION: u32 = 1;

/// The operation, as the event's [`event_flags::OPS_MASK`] bits give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordedOp {
    Read,
    Write,
    ReadWrite,
    Exec,
}

impl RecordedOp {
    /// The operation of a kernel event; `None` if it carries no operation bits.
    pub fn of(event: &Event) -> Option<RecordedOp> {
        let ops = (event.flags & event_flags::OPS_MASK) >> event_flags::OPS_SHIFT;
        if ops & abi::OP_EXEC != 0 {
            return Some(RecordedOp::Exec);
        }
        match (ops & abi::OP_READ != 0, ops & abi::OP_WRITE != 0) {
            (true, true) => Some(RecordedOp::ReadWrite),
            (true, false) => Some(RecordedOp::Read),
            (false, true) => Some(RecordedOp::Write),
            (false, false) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordedOp::Read => "read",
            RecordedOp::Write => "write",
            RecordedOp::ReadWrite => "read-write",
            RecordedOp::Exec => "exec",
        }
    }
}

/// One process of the ancestry, as `/proc` showed it when the event was read (the acting
/// process's command line, name and user come from the kernel's event: it may be gone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    /// As the host's pid namespace numbers it.
    pub pid: u32,
    /// The process name (`comm`).
    pub name: String,
    /// The arguments; empty when unknown.
    pub argv: Vec<String>,
    /// The command line was longer than guard reads ([`abi::CMDLINE_MAX`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub argv_truncated: bool,
    /// The executable (`/proc/PID/exe`); `None` when the process was gone before it was read.
    pub exe: Option<String>,
    pub uid: u32,
    /// The uid's name in the node's user database (`user("name")` subjects need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub tty: bool,
    /// Depth of its pid namespace (0: the host's).
    pub ns_level: u32,
    /// Pid 1 of its pid namespace.
    pub ns_init: bool,
    /// Entered into its pid namespace from outside, or descends from one that was (known for
    /// the acting process from the kernel; derived from the namespaces for its ancestors).
    #[serde(default, skip_serializing_if = "is_false")]
    pub entered: bool,
    /// Its cgroup v2 path; `None` when unknown.
    pub cgroup: Option<String>,
    /// The container its cgroup belongs to, as the node's container runtime described it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<RecordedContainer>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedContainer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod's Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub version: u32,
    /// Wall-clock time of the decision, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub op: RecordedOp,
    /// The opened file or the executed program.
    pub path: String,
    /// The path was too long to read whole; the policy judged it fail-closed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_truncated: bool,
    /// The enforcement backend that decided.
    pub backend: Backend,
    /// What the loaded policy decided (for a refusal not carried out: what it would have done).
    pub decision: Action,
    /// The decision was carried out (false in audit mode, for a rule the safety valve
    /// switched off, and for allow).
    pub enforced: bool,
    /// The rule that decided a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The source file of the policy that decided.
    pub policy: String,
    /// The ancestry, the host's init first, the acting process last.
    pub process: Vec<RecordedProcess>,
    /// Every ancestor up to the host's init was found, and the acting process's executable is
    /// known. When false, a replay judges with what is there and says so.
    pub complete: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A record line that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct RecordError {
    pub line: usize,
    pub message: String,
}

/// Reads a record file's lines (blank lines are skipped). Stops at the first bad line: a
/// replay that skipped lines would report fewer differences than there are.
pub fn parse(text: &str) -> Result<Vec<(usize, Recorded)>, RecordError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let r: Recorded = serde_json::from_str(line).map_err(|e| RecordError {
            line: line_no,
            message: format!("not a guard record: {e}"),
        })?;
        if r.version != RECORD_VERSION {
            return Err(RecordError {
                line: line_no,
                message: format!(
                    "record format version {} (this guardc reads version {RECORD_VERSION})",
                    r.version
                ),
            });
        }
        if r.process.is_empty() {
            return Err(RecordError {
                line: line_no,
                message: "the record names no process".into(),
            });
        }
        out.push((line_no, r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recorded {
        Recorded {
            version: RECORD_VERSION,
            time: "2026-11-28T15:00:00.000000001Z".into(),
            op: RecordedOp::Read,
            path: "/mnt/secrets/db-password".into(),
            path_truncated: false,
            backend: Backend::Tracepoint,
            decision: Action::Kill,
            enforced: false,
            rule: Some("guard /mnt/secrets/*".into()),
            policy: "secrets.grd".into(),
            process: vec![RecordedProcess {
                pid: 1,
                name: "systemd".into(),
                argv: vec!["/sbin/init".into()],
                argv_truncated: false,
                exe: Some("/usr/lib/systemd/systemd".into()),
                uid: 0,
                user: Some("root".into()),
                tty: false,
                ns_level: 0,
                ns_init: true,
                entered: false,
                cgroup: Some("/".into()),
                container: None,
            }],
            complete: true,
        }
    }

    #[test]
    fn a_line_reads_back_as_written() {
        let line = serde_json::to_string(&sample()).unwrap();
        assert!(line.contains("\"decision\":\"kill\""), "{line}");
        assert!(line.contains("\"op\":\"read\""), "{line}");
        let parsed = parse(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].0, 3);
        assert_eq!(parsed[0].1, sample());
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let good = serde_json::to_string(&sample()).unwrap();
        let err = parse(&format!("{good}\n{{\"version\":1}}\n")).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("not a guard record"), "{err}");
        let mut other = sample();
        other.version = 7;
        let err = parse(&serde_json::to_string(&other).unwrap()).unwrap_err();
        assert!(err.message.contains("version 7"), "{err}");
        let mut empty = sample();
        empty.process.clear();
        let err = parse(&serde_json::to_string(&empty).unwrap()).unwrap_err();
        assert!(err.message.contains("no process"), "{err}");
    }

    #[test]
    fn operations_come_from_the_event_flags() {
        let mut e = Event::from_bytes(&[0; core::mem::size_of::<Event>()]).unwrap();
        assert_eq!(RecordedOp::of(&e), None);
        e.flags = (abi::OP_READ << event_flags::OPS_SHIFT) | event_flags::TTY;
        assert_eq!(RecordedOp::of(&e), Some(RecordedOp::Read));
        e.flags = (abi::OP_READ | abi::OP_WRITE) << event_flags::OPS_SHIFT;
        assert_eq!(RecordedOp::of(&e), Some(RecordedOp::ReadWrite));
        e.flags = abi::OP_EXEC << event_flags::OPS_SHIFT;
        assert_eq!(RecordedOp::of(&e), Some(RecordedOp::Exec));
    }
}
