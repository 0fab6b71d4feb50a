//! A simulated node running a compiled object on either backend: the processes of a
//! described tree are created the way the kernel creates them (fork, exec, a new pid
//! namespace, a process entered from outside), and at each step the object's own program for
//! that hook runs with the context the kernel would give it. The identity a process holds is
//! whatever the tracking programs wrote for it; nothing here writes the task map.
//!
//! The hooks and their contexts (`/sys/kernel/tracing/events/*/*/format`, and the BTF
//! tracepoints' arguments):
//! * `tp_btf/sched_process_exec`: `(struct task_struct *, pid_t old_pid, struct linux_binprm *)`,
//!   after the new image's `comm` and `mm` are set up;
//! * `tp_btf/sched_process_fork`: `(struct task_struct *parent, struct task_struct *child)`,
//!   in the parent;
//! * `tp_btf/sched_process_exit`: `(struct task_struct *)`, in the exiting task;
//! * `tracepoint/syscalls/sys_exit_openat` (tracepoint backend): `{ u16 common_type; u8 flags,
//!   preempt_count; s32 common_pid; s32 __syscall_nr; long ret; }` (24 bytes), after the open
//!   installed `ret`;
//! * `lsm/file_open` (LSM backend): `(struct file *)`, before a descriptor exists; a non-zero
//!   return fails the open;
//! * `tracepoint/syscalls/sys_enter_execve` (LSM backend): the common header, `__syscall_nr`,
//!   then `filename`, `argv`, `envp` (user pointers) at 16, 24, 32, in the caller's image;
//! * `lsm/bprm_check_security` (LSM backend): `(struct linux_binprm *)`, before the point of
//!   no return; a non-zero return fails the `execve` and the caller goes on.

use std::collections::BTreeMap;

mod exec;

pub use exec::{comm_of, parse_shebang};

use super::mem::Kind;
use super::world::{FMODE_READ, FMODE_WRITE, Task};
use super::{Program, Sim, SimError, World};
use crate::abi::{self, Action, Event, IdentityStore};

pub const SEC_EXEC: &str = "tp_btf/sched_process_exec";
pub const SEC_FORK: &str = "tp_btf/sched_process_fork";
pub const SEC_EXIT: &str = "tp_btf/sched_process_exit";
pub const SEC_OPEN: &str = "tracepoint/syscalls/sys_exit_openat";
pub const SEC_LSM_OPEN: &str = "lsm/file_open";
pub const SEC_ARGV: &str = "tracepoint/syscalls/sys_enter_execve";
pub const SEC_LSM_EXEC: &str = "lsm/bprm_check_security";

pub use crate::abi::Backend;

/// `__NR_openat` on x86_64: what `sys_exit_openat` reports in `__syscall_nr`.
const NR_OPENAT: u32 = 257;
const SIGKILL: u32 = 9;

/// The mode an open asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
    ReadWrite,
}

impl Mode {
    fn f_mode(self) -> u32 {
        match self {
            Mode::Read => FMODE_READ,
            Mode::Write => FMODE_WRITE,
            Mode::ReadWrite => FMODE_READ | FMODE_WRITE,
        }
    }
}

/// What the programs decided about one operation, from what they did.
#[derive(Clone)]
pub struct Outcome {
    /// The event's action ([`Action::Allow`] when no event was emitted): on this backend a
    /// kill or a deny is carried out with SIGKILL, an alert only reports.
    pub verdict: Action,
    /// The ring buffer records the operation produced, decoded with the runtime's ABI.
    pub events: Vec<Event>,
    /// `bpf_send_signal` calls: (pid, signal).
    pub signals: Vec<(u32, u32)>,
    /// An LSM hook returned an error: the operation failed (`EPERM`).
    pub denied: bool,
}

impl std::fmt::Debug for Outcome {
    /// The events by kind, rule, action and process (an [`Event`] is 4 KiB of bytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events: Vec<String> = self
            .events
            .iter()
            .map(|e| {
                format!(
                    "kind {} rule {} action {} flags {:#x} pid {} comm {:?} path {:?}",
                    e.kind,
                    e.rule,
                    e.action,
                    e.flags,
                    e.pid,
                    String::from_utf8_lossy(e.comm_bytes()),
                    String::from_utf8_lossy(e.path_bytes())
                )
            })
            .collect();
        f.debug_struct("Outcome")
            .field("verdict", &self.verdict)
            .field("events", &events)
            .field("signals", &self.signals)
            .field("denied", &self.denied)
            .finish()
    }
}

impl Outcome {
    pub fn killed(&self) -> bool {
        self.signals.iter().any(|&(_, s)| s == SIGKILL)
    }

    /// Nothing happened.
    fn none() -> Outcome {
        Outcome {
            verdict: Action::Allow,
            events: Vec::new(),
            signals: Vec::new(),
            denied: false,
        }
    }

    /// `self` then `later`, as one operation's outcome.
    fn then(mut self, later: Outcome) -> Outcome {
        self.verdict = self.verdict.max(later.verdict);
        self.events.extend(later.events);
        self.signals.extend(later.signals);
        self.denied |= later.denied;
        self
    }
}

/// A pid namespace: its depth, and the next pid it hands out.
#[derive(Clone, Debug)]
struct Namespace {
    level: u32,
    next_pid: u32,
}

/// A node with one object loaded, its host init (pid 1, `/sbin/init`) exec'd.
#[derive(Clone, Debug)]
pub struct Machine {
    pub sim: Sim,
    pub backend: Backend,
    /// The identity store whose programs run (task storage, unless told otherwise).
    pub store: IdentityStore,
    programs: BTreeMap<&'static str, Program>,
    namespaces: Vec<Namespace>,
    /// The namespace of each process.
    ns_of: BTreeMap<u32, usize>,
    next_pid: u32,
    /// Processes a program killed: they run nothing more.
    dead: Vec<u32>,
}

impl Machine {
    /// Loads `object` on the tracepoint backend and boots the host: pid 1 runs `/sbin/init`,
    /// exec'd through the object's exec program like every other process.
    pub fn boot(object: &[u8]) -> Result<Machine, SimError> {
        Machine::boot_with_init(object, Backend::Tracepoint, &["/sbin/init"], "/sbin/init")
    }

    /// [`Machine::boot`] on `backend`, with another command line and executable for the
    /// host's init. The programs are those `guard-run` attaches on that backend: the tracking
    /// programs, and the backend's own.
    pub fn boot_with_init(
        object: &[u8],
        backend: Backend,
        argv: &[&str],
        exe: &str,
    ) -> Result<Machine, SimError> {
        Machine::boot_with_store(object, backend, IdentityStore::Task, argv, exe)
    }

    /// [`Machine::boot_with_init`] with the programs of identity store `store`; for the hash
    /// store, the object's identity map is made a hash map first, as `guard-run` makes it.
    pub fn boot_with_store(
        object: &[u8],
        backend: Backend,
        store: IdentityStore,
        argv: &[&str],
        exe: &str,
    ) -> Result<Machine, SimError> {
        let init = Task::new(1, &[]);
        let mut sim = Sim::new(World::new().task(init))?;
        let mut object = object.to_vec();
        if store == IdentityStore::Hash {
            crate::elf::set_map_type(&mut object, abi::MAP_TASKS, abi::MAP_TYPE_HASH)
                .map_err(|e| SimError::Load(e.to_string()))?;
        }
        let obj = sim.load(&object)?;
        if store == IdentityStore::Hash {
            sim.set_max_entries(abi::MAP_TASKS, abi::TASKS_MAX_ENTRIES)?;
        }
        let variant = |s: &str| obj.program(&crate::programs::variant_section(s, store));
        let own: &[&'static str] = match backend {
            Backend::Tracepoint => &[SEC_OPEN],
            Backend::Lsm => &[SEC_LSM_OPEN],
        };
        let mut programs: BTreeMap<&'static str, _> = [SEC_EXEC, SEC_FORK, SEC_EXIT]
            .iter()
            .chain(own)
            .map(|s| Ok((*s, variant(s)?.clone())))
            .collect::<Result<_, SimError>>()?;
        // The LSM exec check and the tracepoints that prepare it are only in objects with exec
        // rules; without them, as in the kernel, those hooks run nothing.
        if backend == Backend::Lsm {
            // The exec check reads no identity: one program for both stores.
            if let Ok(p) = variant(SEC_ARGV) {
                programs.insert(SEC_ARGV, p.clone());
            }
            if let Ok(p) = obj.program(SEC_LSM_EXEC) {
                programs.insert(SEC_LSM_EXEC, p.clone());
            }
        }
        let mut m = Machine {
            sim,
            backend,
            store,
            programs,
            namespaces: vec![Namespace {
                level: 0,
                next_pid: 2,
            }],
            ns_of: BTreeMap::from([(1, 0)]),
            next_pid: 2,
            dead: Vec::new(),
        };
        m.exec_path(1, argv, exe, exe)?;
        Ok(m)
    }

    fn task(&self, pid: u32) -> Result<&Task, SimError> {
        if self.dead.contains(&pid) {
            return Err(SimError::World(format!("process {pid} was killed")));
        }
        self.sim
            .world
            .task_by_pid(pid)
            .ok_or_else(|| SimError::World(format!("no process {pid}")))
    }

    /// Runs the program of hook `section` as task `current` with the context `ctx`: what it
    /// did, and whether it failed the operation (an LSM hook's non-zero return). A process it
    /// killed exits (the exit program runs) and runs nothing more.
    fn fire(&mut self, section: &str, current: u32, ctx: Vec<u8>) -> Result<Outcome, SimError> {
        let prog = match self.programs.get(section) {
            Some(p) => p.clone(),
            // A hook the object has no program for (the LSM exec check of a policy without
            // exec rules): nothing runs, nothing happens.
            None if [SEC_ARGV, SEC_LSM_EXEC].contains(&section) => {
                return Ok(Outcome {
                    verdict: Action::Allow,
                    events: Vec::new(),
                    signals: Vec::new(),
                    denied: false,
                });
            }
            None => return Err(SimError::Load(format!("no program for `{section}`"))),
        };
        let ctx = self
            .sim
            .mem
            .alloc(format!("context of {section}"), Kind::ReadOnly, ctx);
        let (events, signals) = (self.sim.events.len(), self.sim.signals.len());
        self.sim.world.current = current;
        let ret = self.sim.run(&prog, ctx);
        self.sim.mem.free(ctx);
        let ret = ret?;
        let events = self.sim.events[events..]
            .iter()
            .map(|b| {
                Event::from_bytes(b).ok_or_else(|| {
                    SimError::Helper(format!("a {}-byte event is shorter than Event", b.len()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signals = self.sim.signals[signals..].to_vec();
        let verdict = events
            .iter()
            .filter_map(|e| Action::from_u32(e.action))
            .max()
            .unwrap_or(Action::Allow);
        let out = Outcome {
            verdict,
            events,
            signals,
            denied: ret != 0,
        };
        for &(pid, sig) in &out.signals {
            if sig == SIGKILL && !self.dead.contains(&pid) {
                self.exit(pid)?;
                self.dead.push(pid);
            }
        }
        Ok(out)
    }

    /// The pid namespace of a live process.
    fn ns(&self, pid: u32) -> Result<usize, SimError> {
        self.task(pid)?;
        self.ns_of
            .get(&pid)
            .copied()
            .ok_or_else(|| SimError::World(format!("process {pid} is in no pid namespace")))
    }

    fn words(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn new_pid(&mut self, ns: usize) -> (u32, u32) {
        let pid = self.next_pid;
        self.next_pid += 1;
        let n = &mut self.namespaces[ns];
        let ns_pid = if n.level == 0 { pid } else { n.next_pid };
        n.next_pid += 1;
        (pid, ns_pid)
    }

    /// `fork` of `parent` into namespace `ns` (the parent's, unless it set up another with
    /// `unshare` or `setns`); runs the fork program in the parent.
    fn fork_into(&mut self, parent: u32, ns: usize) -> Result<u32, SimError> {
        let p = self.task(parent)?.clone();
        let (pid, ns_pid) = self.new_pid(ns);
        let child = Task {
            pid,
            tgid: pid,
            parent: Some(parent),
            ns_level: self.namespaces[ns].level,
            ns_pid,
            ..p
        };
        self.sim.world.add_task(&mut self.sim.mem, child)?;
        self.ns_of.insert(pid, ns);
        let words = Self::words(&[
            self.sim.world.task_addr[&parent],
            self.sim.world.task_addr[&pid],
        ]);
        self.fire(SEC_FORK, parent, words)?;
        Ok(pid)
    }

    /// A child of `parent` running the same image (`fork`).
    pub fn fork(&mut self, parent: u32) -> Result<u32, SimError> {
        let ns = self.ns(parent)?;
        self.fork_into(parent, ns)
    }

    /// A child of `parent` that is pid 1 of a new pid namespace one level below the parent's
    /// (`unshare --pid --fork`, a container runtime starting a container).
    pub fn fork_new_namespace(&mut self, parent: u32) -> Result<u32, SimError> {
        let level = self.namespaces[self.ns(parent)?].level + 1;
        self.namespaces.push(Namespace { level, next_pid: 1 });
        let ns = self.namespaces.len() - 1;
        self.fork_into(parent, ns)
    }

    /// A process brought into `target`'s pid namespace from outside, as `nsenter -t TARGET
    /// -p` and `kubectl exec` do: a host process (`nsenter`, forked from the host's init)
    /// joins the namespace with `setns` and forks; the child is in the namespace without
    /// descending from its init. The child takes `uid` and the terminal `tty`; it still runs
    /// nsenter's image, the caller execs the command in it.
    pub fn enter(&mut self, target: u32, uid: u32, tty: Option<i32>) -> Result<u32, SimError> {
        self.task(target)?;
        let nsenter = self.fork(1)?;
        let t = target.to_string();
        self.sim.world.set_tty(&mut self.sim.mem, nsenter, tty)?;
        self.exec(
            nsenter,
            &["nsenter", "-t", &t, "-p", "-m"],
            "/usr/bin/nsenter",
        )?;
        let ns = self.ns(target)?;
        let child = self.fork_into(nsenter, ns)?;
        self.sim.world.set_uid(child, uid)?;
        Ok(child)
    }

    /// An `openat` of `path` by `pid`. Tracepoint backend: the open succeeds, the file is
    /// installed at a descriptor, then the open program runs on the syscall's exit. LSM
    /// backend: the check runs on the file first, and the file is installed only if it allows.
    pub fn open(&mut self, pid: u32, path: &str, mode: Mode) -> Result<Outcome, SimError> {
        self.task(pid)?;
        let mem = &mut self.sim.mem;
        let file = self.sim.world.file_struct(mem, path, mode.f_mode())?;
        if self.backend == Backend::Lsm {
            let out = self.fire(SEC_LSM_OPEN, pid, Self::words(&[file]))?;
            if !out.denied && !self.dead.contains(&pid) {
                self.sim
                    .world
                    .install(&mut self.sim.mem, pid, file, path, mode.f_mode())?;
            }
            return Ok(out);
        }
        let fd = self
            .sim
            .world
            .install(&mut self.sim.mem, pid, file, path, mode.f_mode())?;
        let mut ctx = vec![0u8; 24];
        ctx[4..8].copy_from_slice(&pid.to_le_bytes());
        ctx[8..12].copy_from_slice(&NR_OPENAT.to_le_bytes());
        ctx[16..24].copy_from_slice(&i64::from(fd).to_le_bytes());
        self.fire(SEC_OPEN, pid, ctx)
    }

    /// The process exits: the exit program forgets it.
    pub fn exit(&mut self, pid: u32) -> Result<(), SimError> {
        self.task(pid)?;
        let words = Self::words(&[self.sim.world.task_addr[&pid]]);
        self.fire(SEC_EXIT, pid, words)?;
        self.sim.free_task_storage(pid);
        Ok(())
    }

    /// Changes the real uid of `pid` (`setuid`).
    pub fn set_uid(&mut self, pid: u32, uid: u32) -> Result<(), SimError> {
        self.task(pid)?;
        self.sim.world.set_uid(pid, uid)
    }

    /// Gives `pid` the controlling terminal `tty`, or none.
    pub fn set_tty(&mut self, pid: u32, tty: Option<i32>) -> Result<(), SimError> {
        self.task(pid)?;
        self.sim.world.set_tty(&mut self.sim.mem, pid, tty)
    }

    /// Moves `pid` to cgroup `id`; its children are born there.
    pub fn set_cgroup(&mut self, pid: u32, id: u64) -> Result<(), SimError> {
        self.task(pid)?;
        self.sim.world.set_cgroup(pid, id)
    }

    /// The pid of `target` as `viewer` sees it: its number in the viewer's pid namespace if
    /// it is there, else its global pid (what a path under `/proc` names).
    pub fn pid_seen_by(&self, viewer: u32, target: u32) -> Option<u32> {
        let t = self.sim.world.task_by_pid(target)?;
        Some(if self.ns_of.get(&viewer) == self.ns_of.get(&target) {
            t.ns_pid
        } else {
            t.pid
        })
    }

    /// The process `pid` as the world holds it (uid, argv, namespace level...).
    pub fn process(&self, pid: u32) -> Option<&Task> {
        self.sim.world.task_by_pid(pid)
    }

    /// The entry the tracking programs wrote for `pid` in the task map.
    pub fn task_info(&self, pid: u32) -> Option<abi::TaskInfo> {
        let bytes = self.sim.map_get(abi::MAP_TASKS, &pid.to_le_bytes())?;
        if bytes.len() < core::mem::size_of::<abi::TaskInfo>() {
            return None;
        }
        // SAFETY: TaskInfo is repr(C) and made of u64s only (every bit pattern is valid); the
        // length was checked and read_unaligned copes with any alignment.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<abi::TaskInfo>()) })
    }
}
