//! `guard-run load --record FILE`: every operation the policy's patterns cover, allowed or
//! not, written as one JSON line with its process context ([`guard_ebpf::record`]), for
//! `guardc test --replay` to judge another policy against.
//!
//! The kernel's event carries what must not be lost when the process is gone (its command
//! line, name, uid, terminal, whether it was entered from outside, the path and the
//! operation). The ancestry comes from `/proc` when the event is read: ancestors usually live
//! longer than the process acting (a shell, the application), but one that already exited
//! ends the chain, and the acting process's executable is only known while it runs. Such a
//! record says `"complete": false`, and a replay says which of its verdicts rest on it.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use guard_ebpf::abi::{Action, Backend, CMDLINE_MAX, Event, event_flags};
use guard_ebpf::record::{
    RECORD_VERSION, Recorded, RecordedContainer, RecordedOp, RecordedProcess,
};

use crate::clock;
use crate::containers::{ContainerCache, container_id_of_cgroup};
use crate::procscan::{
    parse_ns_init, parse_ns_level, parse_stat_ppid, read_cmdline, read_to_end, stat_field,
};

/// Ancestors followed at most (a ppid cycle while pids are reused must not loop).
const MAX_DEPTH: usize = 64;

/// Writes the record file.
pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    proc_root: PathBuf,
    backend: Backend,
    policy: String,
    /// Operations seen, records written (the distinct ones), and how many of those are
    /// incomplete.
    pub seen: u64,
    pub written: u64,
    pub incomplete: u64,
    /// Digests of the records written, pids and time aside: an operation repeated by the same
    /// kind of process (an application reading its secret every second) is written once, so
    /// that a recording of days stays the size of what the node does, not of how often.
    written_digests: HashSet<u64>,
    /// A write failed (disk full): said once, then records are dropped.
    failed: bool,
}

/// What the recorder needs to know about the node for one event.
pub struct Node<'a> {
    pub containers: &'a ContainerCache,
    pub user_name: &'a mut dyn FnMut(u32) -> Option<String>,
}

impl Recorder {
    /// Opens `path` for appending (an agent restarted with the same file continues it).
    pub fn create(path: &Path, backend: Backend, policy: &str) -> Result<Recorder> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the record file `{}`", path.display()))?;
        Ok(Recorder {
            out: BufWriter::new(file),
            path: path.to_owned(),
            proc_root: PathBuf::from("/proc"),
            backend,
            policy: policy.to_owned(),
            seen: 0,
            written: 0,
            incomplete: 0,
            written_digests: HashSet::new(),
            failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one event: `rule` is the name of the rule that decided a refusal.
    pub fn record(&mut self, event: &Event, rule: Option<&str>, epoch_ns: u64, node: Node<'_>) {
        if self.failed {
            return;
        }
        let Some(op) = RecordedOp::of(event) else {
            return;
        };
        let (process, complete) = chain(&self.proc_root, event, op, node);
        let action = Action::from_u32(event.action).unwrap_or(Action::Kill);
        let enforced = action != Action::Allow && event.flags & event_flags::NOT_ENFORCED == 0;
        let rec = Recorded {
            version: RECORD_VERSION,
            time: clock::rfc3339_utc(epoch_ns),
            op,
            path: String::from_utf8_lossy(event.path_bytes()).into_owned(),
            path_truncated: event.flags & event_flags::PATH_TRUNCATED != 0,
            backend: self.backend,
            decision: action,
            enforced,
            rule: rule.filter(|_| action != Action::Allow).map(str::to_owned),
            policy: self.policy.clone(),
            process,
            complete,
        };
        self.seen += 1;
        // An incomplete record may lack what set it apart from another: each is written.
        if complete && !self.first_time(&rec) {
            return;
        }
        let written = serde_json::to_writer(&mut self.out, &rec)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match written {
            Ok(()) => {
                self.written += 1;
                self.incomplete += u64::from(!complete);
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Whether no record like `rec` (time and pids aside) was written yet.
    fn first_time(&mut self, rec: &Recorded) -> bool {
        // Bounds the memory of a node whose activity never repeats; past it, repeats are
        // written again, which costs space, not correctness.
        const MAX_DIGESTS: usize = 1 << 20;
        let mut key = rec.clone();
        key.time.clear();
        for p in &mut key.process {
            p.pid = 0;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&key).unwrap_or_default().hash(&mut h);
        if self.written_digests.len() >= MAX_DIGESTS {
            self.written_digests.clear();
        }
        self.written_digests.insert(h.finish())
    }

    /// Pushes what is buffered to the file (once a second, and at the end).
    pub fn flush(&mut self) {
        if !self.failed
            && let Err(e) = self.out.flush()
        {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        self.failed = true;
        crate::report!(
            "guard-run: WARNING: cannot write the record file `{}` ({e}); recording stopped, enforcement goes on",
            self.path.display()
        );
    }
}

/// One process as `/proc` shows it.
struct Seen {
    ppid: u32,
    name: String,
    argv: Vec<String>,
    argv_truncated: bool,
    exe: Option<String>,
    uid: u32,
    tty: bool,
    ns_level: u32,
    ns_init: bool,
    cgroup: Option<String>,
}

fn read(proc_root: &Path, pid: u32) -> Option<Seen> {
    let dir = proc_root.join(pid.to_string());
    let stat = read_to_end(&dir.join("stat"), usize::MAX).ok()?;
    let status = read_to_end(&dir.join("status"), usize::MAX).ok()?;
    let raw = read_cmdline(&dir).ok()?;
    let status_text = String::from_utf8_lossy(&status);
    let field = |key: &str| {
        status_text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let cgroup = read_to_end(&dir.join("cgroup"), 64 * 1024)
        .ok()
        .and_then(|c| {
            String::from_utf8_lossy(&c)
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(str::to_owned)
        });
    Some(Seen {
        ppid: parse_stat_ppid(&stat)?,
        name: field("Name:").unwrap_or_default().to_owned(),
        argv_truncated: raw.len() > CMDLINE_MAX,
        argv: split_args(&raw[..raw.len().min(CMDLINE_MAX)]),
        exe: std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        uid: field("Uid:")
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|u| u.parse().ok())
            .unwrap_or(u32::MAX),
        tty: stat_field::<i64>(&stat, 7).is_some_and(|t| t != 0),
        ns_level: parse_ns_level(&status) as u32,
        ns_init: parse_ns_init(&status),
        cgroup,
    })
}

/// NUL-separated arguments (a trailing NUL ends the last one).
fn split_args(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn container(containers: &ContainerCache, cgroup: Option<&str>) -> Option<RecordedContainer> {
    let id = cgroup?.rsplit('/').find_map(container_id_of_cgroup)?;
    let info = containers.get(id);
    Some(RecordedContainer {
        id: id.to_owned(),
        name: info.and_then(|i| i.name.clone()),
        namespace: info.and_then(|i| i.pod_namespace.clone()),
        labels: info.and_then(|i| i.pod_labels.clone()).unwrap_or_default(),
    })
}

fn to_recorded(pid: u32, s: &Seen, node: &mut Node<'_>) -> RecordedProcess {
    RecordedProcess {
        pid,
        name: s.name.clone(),
        user: (node.user_name)(s.uid),
        argv: s.argv.clone(),
        argv_truncated: s.argv_truncated,
        exe: s.exe.clone(),
        uid: s.uid,
        tty: s.tty,
        ns_level: s.ns_level,
        ns_init: s.ns_init,
        entered: false,
        cgroup: s.cgroup.clone(),
        container: container(node.containers, s.cgroup.as_deref()),
    }
}

/// The acting process and its ancestors, the host's init first; whether the chain is whole.
fn chain(
    proc_root: &Path,
    event: &Event,
    op: RecordedOp,
    mut node: Node<'_>,
) -> (Vec<RecordedProcess>, bool) {
    let mut complete = true;
    // Ancestors, from the parent up.
    let mut up: Vec<RecordedProcess> = Vec::new();
    let mut pid = event.ppid;
    while pid != 0 && up.len() < MAX_DEPTH {
        let Some(seen) = read(proc_root, pid) else {
            complete = false;
            break;
        };
        up.push(to_recorded(pid, &seen, &mut node));
        if pid == 1 && seen.ns_level == 0 {
            break;
        }
        pid = seen.ppid;
    }
    if up.last().is_none_or(|p| p.pid != 1 || p.ns_level != 0) {
        complete = false;
    }
    up.reverse();
    // Entered, as the kernel's fork program decides it: a process in a deeper pid namespace
    // than its parent that is not that namespace's init came in from outside; within a
    // namespace it is inherited.
    for i in 1..up.len() {
        let (parent, child) = (up[i - 1].clone(), &mut up[i]);
        child.entered = if child.ns_level > parent.ns_level {
            !child.ns_init
        } else {
            child.ns_level == parent.ns_level && parent.entered
        };
    }

    // The acting process: what the kernel said of it, the rest from /proc while it lives.
    let comm = String::from_utf8_lossy(event.comm_bytes()).into_owned();
    let alive = read(proc_root, event.pid).filter(|s| s.name == comm);
    let parent = up.last();
    let exe = match op {
        RecordedOp::Exec => Some(String::from_utf8_lossy(event.path_bytes()).into_owned()),
        _ => alive.as_ref().and_then(|s| s.exe.clone()),
    };
    complete &= exe.is_some();
    let cgroup = alive
        .as_ref()
        .and_then(|s| s.cgroup.clone())
        .or_else(|| parent.and_then(|p| p.cgroup.clone()));
    let ns_level = (event.flags & event_flags::NS_LEVEL_MASK) >> event_flags::NS_LEVEL_SHIFT;
    let actor = RecordedProcess {
        pid: event.pid,
        name: comm,
        user: (node.user_name)(event.uid),
        argv: split_args(event.cmdline_bytes()),
        argv_truncated: event.flags & event_flags::CMDLINE_TRUNCATED != 0,
        exe,
        uid: event.uid,
        tty: event.flags & event_flags::TTY != 0,
        ns_level,
        // Gone: a process in a deeper namespace than its parent that was not entered from
        // outside is the new namespace's init (the kernel's fork program decides so too).
        ns_init: match &alive {
            Some(s) => s.ns_init,
            None => {
                ns_level > parent.map_or(0, |p| p.ns_level)
                    && event.flags & event_flags::ENTERED == 0
            }
        },
        entered: event.flags & event_flags::ENTERED != 0,
        container: container(node.containers, cgroup.as_deref()),
        cgroup,
    };
    up.push(actor);
    (up, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_terminal_parse_from_proc_formats() {
        assert_eq!(
            split_args(b"cat\0/mnt/secrets/x\0"),
            ["cat", "/mnt/secrets/x"]
        );
        assert_eq!(split_args(b"sh\0-c\0\0"), ["sh", "-c", ""]);
        assert!(split_args(b"").is_empty());
        let stat = b"42 (a (b) c) S 1 42 42 34816 42 4194560 0";
        assert_eq!(stat_field::<i64>(stat, 7), Some(34816));
        assert_eq!(parse_stat_ppid(stat), Some(1));
    }

    #[test]
    fn this_process_and_its_ancestry_read_from_proc() {
        let me = std::process::id();
        let seen = read(Path::new("/proc"), me).expect("our own /proc entry");
        let exe = std::env::current_exe().unwrap();
        assert_eq!(seen.exe.as_deref(), exe.to_str());
        assert_eq!(seen.uid, unsafe { libc::getuid() });
        assert!(!seen.argv.is_empty());
        assert!(seen.cgroup.as_deref().is_some_and(|c| c.starts_with('/')));
    }
}
