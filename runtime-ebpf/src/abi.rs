//! The contract between the compiler, the BPF programs and the runtime.
//!
//! Everything in this module is read by two sides that are built separately: the compiler lays
//! tables and programs out according to it, the kernel programs read and write memory according
//! to it, and `guard-run` decodes events and metadata according to it. Every constant that the
//! program templates bake into bytecode is defined here once.
//!
//! INVARIANT: the `#[repr(C)]` structs below are the byte layouts the program templates read and
//! write (their field offsets are taken with `core::mem::offset_of!` by the templates); a change
//! here changes the object format, so bump [`FORMAT_VERSION`].

use serde::{Deserialize, Serialize};

/// Version of the object format (metadata schema, map layouts, event record). `guard-run`
/// refuses objects of another version instead of misreading them.
pub const FORMAT_VERSION: u32 = 9;

/// The license string of the emitted programs. GPL-compatible because the helpers guard needs
/// (`bpf_probe_read_kernel`, `bpf_send_signal`, ...) are GPL-only.
pub const LICENSE: &str = "Dual MIT/GPL";

// --- maps -------------------------------------------------------------------------------------

/// Per-task identity bits ([`TaskInfo`]): the identity store. The object defines it once, as
/// BPF task storage (a BTF-defined map, `.maps`); `guard-run` makes it a hash map keyed by the
/// kernel thread id (global pid namespace) instead where the kernel has no task storage, or
/// when told to ([`IdentityStore`]), and loads the programs written for that store.
pub const MAP_TASKS: &str = "GUARD_TASKS";
/// Ring buffer of [`Event`] records.
pub const MAP_EVENTS: &str = "GUARD_EVENTS";
/// Per-CPU scratch space for the open program (path buffer).
pub const MAP_OPEN_SCRATCH: &str = "GUARD_OSCRATCH";
/// Per-CPU scratch space for the exec program (command-line buffer).
pub const MAP_EXEC_SCRATCH: &str = "GUARD_XSCRATCH";
/// Per-CPU scratch space for the LSM backend's exec check (its own: it must not share a buffer
/// with the open check or the tracking programs, whatever runs between them on the CPU).
pub const MAP_BPRM_SCRATCH: &str = "GUARD_BSCRATCH";
/// Per-CPU counters, indexed by [`Counter`].
pub const MAP_COUNTERS: &str = "GUARD_COUNTERS";
/// [`ExecArgs`] of the execs in progress, keyed by the kernel thread id of the thread that
/// called `execve`: written when the system call starts, read by the LSM backend's exec check.
pub const MAP_EXEC_ARGS: &str = "GUARD_EXECARGS";
/// Which refusals are not carried out: one [`RuleOff`] value at key 0, written by
/// `guard-run` (`--audit` sets `audit`, the safety valve a rule's bit). A refusal of such a
/// rule is reported with the action it would have had and [`event_flags::NOT_ENFORCED`]. A
/// zeroed value (what the kernel creates) enforces every rule: fails closed.
pub const MAP_RULE_OFF: &str = "GUARD_RULEOFF";
/// Rules the safety valve can switch off: every rule id (rule lists hold `u16` ids).
pub const RULE_OFF_BITS: usize = 1 << 16;

/// The value of [`MAP_RULE_OFF`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RuleOff {
    /// Non-zero: audit mode, nothing is carried out.
    pub audit: u32,
    /// Non-zero: an agent records activity (`guard-run load --record`): an operation a rule's
    /// pattern covers and the rules allow is reported too, as an [`Action::Allow`] event.
    pub record: u32,
    /// Bit `id % 8` of byte `id / 8`: rule `id`'s kills and denials are switched off.
    pub rules: [u8; RULE_OFF_BITS / 8],
}

/// Read-only data sections (each becomes a frozen one-entry array map).
pub const RODATA_PATH_DFA: &str = ".rodata.pdfa";
pub const RODATA_CMDLINE_DFA: &str = ".rodata.cdfa";
pub const RODATA_RULES: &str = ".rodata.rules";
pub const RODATA_RULE_LISTS: &str = ".rodata.rlists";
/// Process-name DFA (over `comm`), info words are name-identity masks.
pub const RODATA_NAME_DFA: &str = ".rodata.ndfa";
/// The uids subjects compare with: `u32` count, then up to [`MAX_UIDS`] `u32`s.
pub const RODATA_UIDS: &str = ".rodata.uids";

/// Upper bound on tracked tasks. The hash map is not preallocated, so this bounds memory only.
pub const TASKS_MAX_ENTRIES: u32 = 1 << 20;
/// Ring buffer size in bytes (power of two, multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 8 << 20;

/// Per-task state stored in [`MAP_TASKS`].
///
/// Identity words hold one bit per identity of the policy (at most 64): bit `i` is the
/// identity table's entry `i` (a command line the policy names); in the `*exe*` words, bit `i`
/// is the `exe(…)` set `i` ([`Metadata::exes`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    /// Identities this process's own command line matched at its last exec.
    pub self_ids: u64,
    /// Identities matched by this process or any ancestor (`ancestor(any, …)`).
    pub anc_ids: u64,
    /// Identities matched by the init of this process's pid namespace, if this process is that
    /// init or descends from it (`ancestor(pid1, …)`).
    pub pid1_ids: u64,
    /// `anc_ids` inherited from the parent at fork; exec recomputes `anc_ids` from it.
    pub inh_anc: u64,
    /// `pid1_ids` inherited from the parent at fork; exec recomputes `pid1_ids` from it.
    pub inh_pid1: u64,
    /// [`task_flags`] bits.
    pub flags: u64,
    /// Identities of the pid namespace's init that this process runs the image of: it is that
    /// init, or was forked from it without exec since (`image(pid1, …)`).
    pub img_pid1: u64,
    /// Executable identities (`exe(…)` patterns) its executable matched at exec.
    pub exe_ids: u64,
    /// Executable identities matched by this process's executable or any ancestor's, each at
    /// its exec (`ancestor(any, exe(…))`): `exe_ids` of every image in its ancestry.
    pub anc_exe: u64,
    /// Executable identities of the init of this process's pid namespace, if this process is
    /// that init or descends from it (`ancestor(pid1, exe(…))`).
    pub pid1_exe: u64,
    /// `anc_exe` inherited from the parent at fork; exec recomputes `anc_exe` from it.
    pub inh_anc_exe: u64,
    /// `pid1_exe` inherited from the parent at fork; exec recomputes `pid1_exe` from it.
    pub inh_pid1_exe: u64,
}

/// An exec in progress, as the LSM backend sees it before the new program exists: the command
/// line the new image will start with and the identity it will give the task.
///
/// The LSM backend decides an exec in `bprm_check_security`, before the new image is set up,
/// so it cannot read the new command line from the new image as the tracking program does
/// after the exec. The `execve`/`execveat` tracepoints copy the caller's `argv` instead (the
/// same bytes the kernel is about to copy into the new image) and compute the identity from
/// them with the tracking program's own code; the exec check then reads this record.
///
/// INVARIANT: `cmdline` then `info` start the record, so the record is also the tail of the
/// exec scratch values (the programs share the instruction sequences that fill it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecArgs {
    /// The arguments, each with its terminating NUL, back to back: what the kernel lays out
    /// between `mm->arg_start` and `mm->arg_end` of the new image.
    pub cmdline: [u8; CMDLINE_MAX],
    /// The identity the task will have once the new program runs (`exe_ids`: the executable
    /// the last exec check walked).
    pub info: TaskInfo,
    /// Bytes of `cmdline` in use (at most [`CMDLINE_MAX`]; the whole command line is longer
    /// when `info.flags` has [`task_flags::CMDLINE_TRUNCATED`]).
    pub cmdline_len: u64,
    /// Number of arguments (`bprm->argc` must agree).
    pub argc: u64,
    /// [`exec_flags`] bits.
    pub flags: u64,
    /// `bprm_check_security` calls seen for this exec (one per file the kernel runs: a script,
    /// then its interpreter).
    pub checks: u64,
    /// The `struct file` the last exec check judged (compared by address after the exec).
    pub judged_file: u64,
    /// The process name after the exec (`comm`), NUL-padded.
    pub name: [u8; 16],
}

pub mod exec_flags {
    /// The exec check could not tell the new image's identity; the exec is judged after it
    /// happened, by the tracking program, as on the tracepoint backend.
    pub const DEFER: u64 = 1 << 0;
    /// The last exec check saw a `#!` script and rewrote the command line as the kernel will
    /// for its interpreter; the next check is that interpreter's.
    pub const SCRIPT: u64 = 1 << 1;
}

pub mod task_flags {
    /// The process is the init (pid 1) of its pid namespace.
    pub const NS_INIT: u64 = 1 << 0;
    /// Its command line was longer than the exec program reads; identities were not granted.
    pub const CMDLINE_TRUNCATED: u64 = 1 << 1;
    /// Bits were computed from `/proc` by `guard-run` at load, not by the exec program.
    pub const FROM_PROC_SCAN: u64 = 1 << 2;
    /// Entered into its pid namespace from outside, or a descendant of such a task there
    /// ([`super::FLAG_ENTERED`]). Kept across exec, inherited at fork within the namespace.
    pub const ENTERED: u64 = 1 << 3;
}

/// Index of each identity word in [`Term`]'s arrays, and in the order the programs test them.
/// The first seven come from the task's entry; the others are computed at the decision.
pub const WORD_SELF: usize = 0;
pub const WORD_ANC: usize = 1;
pub const WORD_PID1: usize = 2;
pub const WORD_IMG_PID1: usize = 3;
pub const WORD_EXE: usize = 4;
/// [`TaskInfo::anc_exe`]: `ancestor(any, exe(…))`.
pub const WORD_ANC_EXE: usize = 5;
/// [`TaskInfo::pid1_exe`]: `ancestor(pid1, exe(…))`.
pub const WORD_PID1_EXE: usize = 6;
/// Process-name identities of the current `comm`.
pub const WORD_NAMES: usize = 7;
/// Bit `i`: the current real uid equals uid table entry `i`.
pub const WORD_UIDS: usize = 8;
/// [`FLAG_TTY`] and friends.
pub const WORD_FLAGS: usize = 9;
/// Bit `i`: the task's cgroup (v2) is in scope `i` of [`Metadata::scopes`] (a cgroup subtree,
/// or the cgroups of the containers a container/Kubernetes scope selects on this node).
pub const WORD_SCOPES: usize = 10;
pub const N_WORDS: usize = 11;

/// In [`WORD_FLAGS`]: the task has a controlling terminal.
pub const FLAG_TTY: u64 = 1;
/// In [`WORD_FLAGS`]: the task was entered into its pid namespace from outside (`setns`, as
/// `kubectl exec` does), or descends from such a task in that namespace.
pub const FLAG_ENTERED: u64 = 2;

/// cgroup v2 id → [`WORD_SCOPES`] bits, filled (and kept current) by `guard-run` from the
/// policy's scopes and the containers running on the node.
pub const MAP_CGROUPS: &str = "GUARD_CGROUPS";
pub const CGROUPS_MAX_ENTRIES: u32 = 1 << 16;
/// Most distinct scopes a policy may name (one bit each in [`WORD_SCOPES`]).
pub const MAX_SCOPES: usize = 64;

/// Path-DFA tags at or above this are executable identities (`exe(…)`, bit `tag - base`), not
/// rules.
pub const EXE_TAG_BASE: u32 = 0x8000;
/// Most distinct `exe(…)` patterns, process names and uids a policy may name.
pub const MAX_EXE_IDS: usize = 64;
pub const MAX_NAME_IDS: usize = 64;
pub const MAX_UIDS: usize = 16;

/// Operations a rule covers ([`RuleEntry::ops`]); for an open, the file's mode gives READ
/// and/or WRITE.
pub const OP_READ: u32 = 1;
pub const OP_WRITE: u32 = 2;
pub const OP_EXEC: u32 = 4;

/// One conjunction of a rule's subject: for each identity word `w`,
/// `(w & must[w]) == must[w] && (w & must_not[w]) == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Term {
    pub must: [u64; N_WORDS],
    pub must_not: [u64; N_WORDS],
}

/// Most conjunctions a rule's subject may have once in disjunctive normal form.
pub const MAX_TERMS: usize = 4;

/// A rule as the kernel sees it, in [`RODATA_RULES`], indexed by rule id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// The subject in disjunctive normal form; the rule allows when any term holds.
    pub terms: [Term; MAX_TERMS],
    pub n_terms: u32,
    /// [`Action`] taken when no term holds.
    pub action: u32,
    /// `OP_*` bits: the operations the rule covers.
    pub ops: u32,
    pub _pad: u32,
}

/// What a rule does to an operation it does not allow. Ordered by severity: when several rules
/// refuse one operation, the most severe action wins (ties: the lowest rule id).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow = 0,
    Alert = 1,
    Deny = 2,
    Kill = 3,
}

impl Action {
    pub fn from_u32(v: u32) -> Option<Action> {
        match v {
            0 => Some(Action::Allow),
            1 => Some(Action::Alert),
            2 => Some(Action::Deny),
            3 => Some(Action::Kill),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::Deny => "deny",
            Action::Kill => "kill",
        }
    }
}

/// The path DFA's per-state info word: the low 32 bits index the rule list of rules whose
/// pattern accepts a path ending in this state; the high 32 bits index the list of rules whose
/// pattern could still accept from this state (used when the walk is cut short, so that a path
/// too long to read is judged by every rule that could match it: fail closed).
pub fn path_info(accept_list: u32, possible_list: u32) -> u64 {
    u64::from(accept_list) | (u64::from(possible_list) << 32)
}

/// Rule lists, in [`RODATA_RULE_LISTS`]: a flat `u16` array where a list at index `i` is
/// `[len, rule_0, …, rule_{len-1}]`. Index 0 holds the empty list.
pub const MAX_RULES_PER_LIST: usize = 32;

// --- path walk and buffers ---------------------------------------------------------------------

/// Size of the path buffer; the path is built right to left ending at `PATH_BUF - 1`.
pub const PATH_BUF: usize = 4096;
/// Slack before the path buffer so a component of up to 255 bytes can always be written at a
/// masked offset without the verifier seeing an out-of-bounds access.
pub const PATH_SLACK: usize = 256;
/// Maximum path components (and mount crossings) the dentry walk visits.
pub const PATH_MAX_DEPTH: usize = 48;
/// Bytes of the command line the exec program reads.
pub const CMDLINE_MAX: usize = 256;

// --- events ------------------------------------------------------------------------------------

pub mod event_flags {
    /// The path was longer than the walk could read; rules were applied fail-closed.
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    /// The command line in the event was cut at [`super::CMDLINE_MAX`] bytes.
    pub const CMDLINE_TRUNCATED: u32 = 1 << 1;
    /// `bpf_send_signal` failed: the process could not be killed.
    pub const KILL_FAILED: u32 = 1 << 2;
    /// The task had no identity entry (unknown to guard): no identities held.
    pub const NO_TASK_INFO: u32 = 1 << 3;
    /// The refusal was not carried out ([`super::MAP_RULE_OFF`]: audit mode or the safety
    /// valve); `action` is what would have happened.
    pub const NOT_ENFORCED: u32 = 1 << 4;
    /// The task had a controlling terminal.
    pub const TTY: u32 = 1 << 5;
    /// The task was entered into its pid namespace from outside, or descends from one that was
    /// ([`super::task_flags::ENTERED`]).
    pub const ENTERED: u32 = 1 << 6;
    /// The operation's [`super::OP_READ`] / [`super::OP_WRITE`] / [`super::OP_EXEC`] bits,
    /// shifted left by this much.
    pub const OPS_SHIFT: u32 = 8;
    /// The bits that hold the operation.
    pub const OPS_MASK: u32 = 7 << OPS_SHIFT;
    /// The depth of the task's pid namespace (`pid->level`, at most 32), shifted left by this.
    pub const NS_LEVEL_SHIFT: u32 = 16;
    /// The bits that hold the pid namespace's depth.
    pub const NS_LEVEL_MASK: u32 = 0x3f << NS_LEVEL_SHIFT;
}

/// Kinds of [`Event`].
pub const EVENT_OPEN: u32 = 1;
/// A program was executed; `path` is the executable, `fd` is -1.
pub const EVENT_EXEC: u32 = 2;

/// One record in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// `bpf_ktime_get_boot_ns()` at the decision.
    pub boot_ns: u64,
    /// The task's cgroup v2 id (`bpf_get_current_cgroup_id`): the agent maps it to the
    /// container and pod, which a killed process can no longer be asked about.
    pub cgroup_id: u64,
    pub kind: u32,
    /// [`Action`] taken.
    pub action: u32,
    /// Rule that decided.
    pub rule: u32,
    /// [`event_flags`].
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The file descriptor the open returned.
    pub fd: i32,
    pub path_len: u32,
    pub cmdline_len: u32,
    pub comm: [u8; 16],
    /// The parent's `comm` (Falco's `proc.pname`), read when the event is emitted.
    pub pcomm: [u8; 16],
    pub cmdline: [u8; CMDLINE_MAX],
    pub path: [u8; PATH_BUF],
}

impl Event {
    /// Decodes a ring-buffer record; `None` if it is too short (never trust the kernel side to
    /// be the version we expect).
    pub fn from_bytes(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < core::mem::size_of::<Event>() {
            return None;
        }
        // SAFETY: Event is repr(C), made only of integers and byte arrays (every bit pattern is
        // valid), and the length was checked; read_unaligned copes with the ring's alignment.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
    }

    pub fn path_bytes(&self) -> &[u8] {
        &self.path[..(self.path_len as usize).min(PATH_BUF)]
    }

    pub fn cmdline_bytes(&self) -> &[u8] {
        &self.cmdline[..(self.cmdline_len as usize).min(CMDLINE_MAX)]
    }

    pub fn comm_bytes(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        &self.comm[..end]
    }

    pub fn pcomm_bytes(&self) -> &[u8] {
        let end = self.pcomm.iter().position(|&b| b == 0).unwrap_or(16);
        &self.pcomm[..end]
    }
}

/// Per-CPU counters in [`MAP_COUNTERS`].
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// Unused slot (the ABI keeps its number): counting every open would cost a map update
    /// on opens no rule covers, which guard promises to leave alone.
    Unused = 0,
    /// Decisions other than allow.
    Refused = 1,
    /// Events lost because the ring buffer was full.
    EventsDropped = 2,
    /// `bpf_send_signal` failures.
    KillFailed = 3,
    /// Paths cut short by the walk bound (judged fail-closed).
    PathTruncated = 4,
    /// Execs the LSM backend could only judge after they happened: their new identity was not
    /// known in advance (a `binfmt_misc` handler, a command line changed during the exec).
    ExecJudgedAfter = 5,
    /// Kills not carried out (audit mode, safety valve).
    WouldKill = 6,
    /// Denials not carried out (audit mode, safety valve).
    WouldDeny = 7,
}
pub const N_COUNTERS: u32 = 8;

/// Per-CPU counters per rule, in [`MAP_RULE_COUNTS`]: entry `rule * RULE_COUNTER_KINDS + kind`.
pub const MAP_RULE_COUNTS: &str = "GUARD_RULECOUNT";
/// The object declares room for one rule; `guard-run` sizes the map to the policy's rules when
/// it loads it (a lookup past the end finds nothing, and nothing is counted).
pub const RULE_COUNTS_DEFAULT_ENTRIES: u32 = RULE_COUNTER_KINDS;

/// What [`MAP_RULE_COUNTS`] counts for each rule.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleCounter {
    /// Operations the rule decided: its condition refused them (a Falco rule "matches" when
    /// its condition holds). The sum of the other three.
    Matched = 0,
    /// Refusals this rule decided that were carried out by killing (on the tracepoint backend
    /// also a `deny` enforced by killing).
    Killed = 1,
    /// Refusals this rule decided that made the operation fail with `EPERM` (LSM backend).
    Denied = 2,
    /// Refusals this rule decided that only raised an alert.
    Alerted = 3,
}
pub const RULE_COUNTER_KINDS: u32 = 4;

// --- metadata ----------------------------------------------------------------------------------

/// The `.guard.meta` section: everything `guard-run` needs besides the programs and maps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub format_version: u32,
    pub compiler: String,
    /// The policy file name as given to the compiler.
    pub source: String,
    pub rules: Vec<RuleMeta>,
    /// Command lines (exact, or `cmdline()` globs) of the identity table, bit `i` = entry `i`.
    pub identities: Vec<String>,
    /// `exe(…)` patterns, bit `i` = entry `i` (path-DFA tag `EXE_TAG_BASE + i`).
    pub exes: Vec<String>,
    /// Process names, bit `i` = entry `i`.
    pub names: Vec<String>,
    /// The uid table (bit `i` = entry `i`); entries named in [`Metadata::users`] hold
    /// [`UNRESOLVED_UID`] until `guard-run` resolves the name on the node.
    pub uids: Vec<u32>,
    /// `user("name")` atoms: uid-table entries the runtime fills from the node's user database.
    pub users: Vec<UserSlot>,
    /// Scopes (cgroup subtrees, containers, Kubernetes namespaces, pod labels), bit `i` =
    /// entry `i` of [`WORD_SCOPES`].
    pub scopes: Vec<Scope>,
    pub name_dfa: DfaShape,
    pub path_dfa: DfaShape,
    pub cmdline_dfa: DfaShape,
    pub programs: Vec<ProgramMeta>,
}

/// A uid-table entry that holds the uid of a user name, resolved at load time on the node
/// (names differ between the machine that compiles and the nodes that enforce).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserSlot {
    /// Index into the uid table.
    pub slot: u32,
    pub name: String,
}

/// The uid-table value of an entry no uid can equal (`(uid_t)-1` is not a uid).
pub const UNRESOLVED_UID: u32 = u32::MAX;

/// Where a rule applies, resolved by `guard-run` to the set of cgroups it covers.
///
/// Every variant holds a set: the scope holds when any member matches. The runtime keeps the
/// kernel's [`MAP_CGROUPS`] current as cgroups and containers come and go.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// `cgroup("/path")`: that cgroup v2 directory (relative to the cgroup2 mount) and every
    /// cgroup below it.
    Cgroup { path: String },
    /// `container("name", ...)`: containers with one of these names, or whose id starts with
    /// one of them (at least 12 hex digits, as `docker ps` and `crictl ps` print ids).
    Container { names: Vec<String> },
    /// `k8s_namespace("ns", ...)`: containers of pods in one of these namespaces.
    K8sNamespace { names: Vec<String> },
    /// `pod_label("key=value", ...)`: containers of pods with one of these labels.
    PodLabel { labels: Vec<(String, String)> },
}

/// A container as its runtime's records describe it, for [`Scope::holds_for`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ContainerView<'a> {
    /// The full id (hex).
    pub id: &'a str,
    pub name: Option<&'a str>,
    /// The pod's Kubernetes namespace.
    pub namespace: Option<&'a str>,
    /// The pod's labels; `None` when the runtime does not record them.
    pub labels: Option<&'a std::collections::BTreeMap<String, String>>,
}

impl Scope {
    /// Whether `container` is in this container or Kubernetes scope (a `cgroup(…)` scope
    /// never: it holds by cgroup path, not by container). `guard-run` computes the scope bits it
    /// writes to the kernel with this, and `guardc test` the ones of a case's containers.
    pub fn holds_for(&self, container: &ContainerView<'_>) -> bool {
        let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        match self {
            Scope::Cgroup { .. } => false,
            Scope::Container { names } => names.iter().any(|n| {
                let id_prefix = n.len() >= 12 && is_hex(n) && container.id.starts_with(n.as_str());
                id_prefix || container.name == Some(n.as_str())
            }),
            Scope::K8sNamespace { names } => container
                .namespace
                .is_some_and(|ns| names.iter().any(|n| n == ns)),
            Scope::PodLabel { labels } => container
                .labels
                .is_some_and(|have| labels.iter().any(|(k, v)| have.get(k) == Some(v))),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleMeta {
    pub id: u32,
    pub name: String,
    /// "open", "read", "write" or "exec".
    pub operation: String,
    pub action: Action,
    /// Falco priority name ("Critical", "Informational", ...).
    pub priority: String,
    /// Output template with `%field` references, Falco style.
    pub output: String,
    pub tags: Vec<String>,
    pub patterns: Vec<String>,
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DfaShape {
    pub n_states: u32,
    pub n_classes: u32,
    pub state_bits: u32,
    pub class_bits: u32,
}

/// Where a program attaches and when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProgramMeta {
    /// The program's symbol name in the object.
    pub name: String,
    pub attach: Attach,
    pub role: Role,
    /// The enforcement backend this program belongs to; `None` for the programs every
    /// backend loads (identity tracking). One object carries both backends' programs, and
    /// `guard-run` loads the set the kernel supports.
    pub backend: Option<Backend>,
    /// The identity store this program is written for; `None` for a program that does not
    /// touch it. The object carries a variant of each program that does, per store, and
    /// `guard-run` loads those of the store it chose.
    #[serde(default)]
    pub store: Option<IdentityStore>,
}

/// Where the tracking programs keep each task's identity ([`MAP_TASKS`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStore {
    /// BPF task storage (`BPF_MAP_TYPE_TASK_STORAGE`, Linux 5.11+): state hangs off the
    /// `task_struct`, has no capacity limit and is freed by the kernel with the task.
    Task,
    /// A hash map keyed by thread id, bounded by [`TASKS_MAX_ENTRIES`]; the exit program
    /// removes a task's entry.
    Hash,
}

impl IdentityStore {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStore::Task => "task",
            IdentityStore::Hash => "hash",
        }
    }
}

/// `BPF_MAP_TYPE_TASK_STORAGE`: the type [`MAP_TASKS`] has in the object.
pub const MAP_TYPE_TASK_STORAGE: u32 = 29;
/// `BPF_MAP_TYPE_HASH`: the type `guard-run` gives [`MAP_TASKS`] for the hash store.
pub const MAP_TYPE_HASH: u32 = 1;

/// How a kernel enforces a policy.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// BPF LSM hooks: decides before the operation; deny returns EPERM, kill also signals.
    Lsm,
    /// Syscall tracepoints and `bpf_send_signal`: kills after the operation returned, cannot
    /// deny.
    Tracepoint,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Lsm => "lsm",
            Backend::Tracepoint => "tracepoint",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attach {
    /// A classic tracepoint, attached once per listed `(category, name)`.
    Tracepoint { points: Vec<(String, String)> },
    /// A BTF-typed raw tracepoint (`tp_btf/<name>`).
    BtfTracepoint { name: String },
    /// A BPF LSM hook (`lsm/<hook>`).
    Lsm { hook: String },
}

/// Tracking programs are attached before `/proc` is scanned; enforcement programs after, so
/// enforcement never judges a process whose identity is not known yet.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Tracking,
    Enforcement,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_what_the_templates_assume() {
        assert_eq!(core::mem::size_of::<TaskInfo>(), 96);
        assert_eq!(core::mem::size_of::<Term>(), 176);
        assert_eq!(core::mem::size_of::<RuleEntry>(), 720);
        assert_eq!(core::mem::size_of::<ExecArgs>(), 408);
        assert_eq!(core::mem::offset_of!(ExecArgs, info), CMDLINE_MAX);
        assert_eq!(core::mem::offset_of!(Event, path) % 8, 0);
        assert_eq!(core::mem::size_of::<Event>() % 8, 0);
    }

    #[test]
    fn short_event_is_rejected() {
        assert!(Event::from_bytes(&[0u8; 16]).is_none());
    }
}
