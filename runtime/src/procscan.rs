//! Identity bits of processes that were already running when the policy was loaded.
//!
//! The kernel programs compute a task's identities at exec (its own command line) and fork
//! (inherited from the parent). Processes started before the programs were attached never went
//! through them, so guard-run computes the same words from `/proc` and writes them into the
//! tasks map. The computation here must stay identical to the exec/fork programs': a process
//! that gets different bits from the scan than from an exec would be judged differently
//! depending on when guard started.
//!
//! `/proc` shows the command line as it is now, which differs from the exec-time one if the
//! process rewrote its argument area (setproctitle); the kernel program reads the same memory,
//! so for processes that do this the scan agrees with what an exec program running late would
//! see, which is the best available.
//!
//! Pids are read as `/proc` shows them; the tasks map is keyed by global tids, so guard-run must
//! see the host's pid namespace (`hostPID`) and its `/proc`.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use guard_ebpf::abi::{CMDLINE_MAX, TaskInfo, task_flags};

/// Computes the identity word of a normalised command line, and the executable identities of
/// an executable's path (none by default).
pub trait CmdlineMatcher {
    fn identities(&self, cmdline: &[u8]) -> u64;
    fn exe_identities(&self, _exe: &[u8]) -> u64 {
        0
    }
}

// The cmdline DFA's accepting-state info is the identity mask; start state 1.
impl CmdlineMatcher for guard_ebpf::dfa_table::DfaTable {
    fn identities(&self, cmdline: &[u8]) -> u64 {
        self.info(self.run(1, cmdline))
    }
}

/// A failure reading `/proc` other than a process exiting under our feet.
#[derive(Debug, thiserror::Error)]
#[error("scanning {path}: {source}")]
pub struct ScanError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The command line the exec program would match, from the raw `/proc/<pid>/cmdline` bytes:
/// `None` if longer than [`CMDLINE_MAX`] (the program reads no more and grants no identity),
/// otherwise without its trailing NUL and with the argument-separating NULs as spaces.
pub fn normalize_cmdline(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() > CMDLINE_MAX {
        return None;
    }
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    Some(raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect())
}

/// What the scan learns about one process (thread group).
#[derive(Debug)]
struct Proc {
    ppid: u32,
    ns_init: bool,
    /// Depth of its pid namespace (entries on `NSpid:` minus one).
    ns_level: usize,
    /// The executable's path (`/proc/<pid>/exe`), empty if unknown (kernel threads).
    exe: Vec<u8>,
    /// `None`: command line too long.
    cmdline: Option<Vec<u8>>,
    threads: Vec<u32>,
}

/// Scans `proc_root` (normally `/proc`) and returns the [`TaskInfo`] of every thread, sorted by
/// tid. Threads of one process share one `TaskInfo`.
pub fn scan<M: CmdlineMatcher + ?Sized>(
    proc_root: &Path,
    matcher: &M,
) -> Result<Vec<(u32, TaskInfo)>, ScanError> {
    let mut procs = BTreeMap::new();
    for pid in numeric_entries(proc_root)? {
        if let Some(p) = read_proc(&proc_root.join(pid.to_string()), pid)? {
            procs.insert(pid, p);
        }
    }
    let infos = inherit(&procs, matcher);
    let mut out: Vec<(u32, TaskInfo)> = procs
        .iter()
        .flat_map(|(pid, p)| {
            let info = infos[pid];
            p.threads.iter().map(move |&tid| (tid, info))
        })
        .collect();
    out.sort_by_key(|&(tid, _)| tid);
    Ok(out)
}

/// Computes every process's words parents first, following the exec/fork programs: at fork a
/// child inherits its parent's `anc_ids`/`pid1_ids` (and `anc_exe`/`pid1_exe`); at exec it
/// adds its own identities to `anc_ids` (its executable's to `anc_exe`), and to `pid1_ids`
/// (`pid1_exe`) when it is its namespace's init.
///
/// Only live processes are seen: an ancestor that exited before the scan (its children were
/// reparented to a subreaper or to init) is unknown, and so are its command line and its
/// executable. The chain stops at the first parent `/proc` does not list.
fn inherit<M: CmdlineMatcher + ?Sized>(
    procs: &BTreeMap<u32, Proc>,
    matcher: &M,
) -> BTreeMap<u32, TaskInfo> {
    let mut done: BTreeMap<u32, TaskInfo> = BTreeMap::new();
    for &start in procs.keys() {
        if done.contains_key(&start) {
            // Computed as some earlier process's ancestor; recomputing could disagree when a
            // cycle was broken there.
            continue;
        }
        // Walk up to the first process already computed, a root (parent 0 or not listed), or a
        // process already on this walk (a ppid cycle, which /proc can show transiently while
        // pids are reused); then compute back down.
        let mut chain = vec![start];
        let mut on_chain = HashSet::from([start]);
        let mut inherited = TaskInfo::default();
        let mut parent_level = None;
        loop {
            let ppid = procs[chain.last().unwrap_or(&start)].ppid;
            if let Some(parent) = done.get(&ppid) {
                inherited = *parent;
                parent_level = procs.get(&ppid).map(|p| p.ns_level);
                break;
            }
            if ppid == 0 || !procs.contains_key(&ppid) || !on_chain.insert(ppid) {
                break;
            }
            chain.push(ppid);
        }
        let mut parent_image: Option<(&[u8], Option<&[u8]>)> = chain
            .last()
            .and_then(|top| procs.get(&procs[top].ppid))
            .map(|pp| (pp.exe.as_slice(), pp.cmdline.as_deref()));
        for &pid in chain.iter().rev() {
            let p = &procs[&pid];
            // /proc does not say whether a process exec'd after its fork; one that has its
            // parent's executable and command line is taken to run its parent's image (a
            // forked worker). An exec'd child rarely repeats both.
            let same_image =
                !p.exe.is_empty() && parent_image == Some((p.exe.as_slice(), p.cmdline.as_deref()));
            let info = exec_info(
                p,
                &inherited,
                parent_level.map(|l| l == p.ns_level),
                same_image,
                matcher,
            );
            parent_image = Some((p.exe.as_slice(), p.cmdline.as_deref()));
            done.insert(pid, info);
            inherited = info;
            parent_level = Some(p.ns_level);
        }
    }
    done
}

/// The words the exec program writes for `p`, given what it inherited at fork.
///
/// INVARIANT (the fork program): a process in another pid namespace than its parent (a new
/// namespace's init, or one entered from outside with `setns`) does not descend from its
/// namespace's init through that parent, so it inherits no `pid1` identities.
fn exec_info<M: CmdlineMatcher + ?Sized>(
    p: &Proc,
    parent: &TaskInfo,
    // `None`: no parent is known (a root of the scan).
    same_pid_ns: Option<bool>,
    same_image: bool,
    matcher: &M,
) -> TaskInfo {
    let entered = match same_pid_ns {
        // As the fork program: entered stays entered within a namespace, and a process in a
        // deeper namespace than its parent that is not its init was entered from outside.
        Some(true) => parent.flags & task_flags::ENTERED,
        Some(false) if !p.ns_init => task_flags::ENTERED,
        _ => 0,
    };
    let same_pid_ns = same_pid_ns.unwrap_or(false);
    let inh_pid1 = if same_pid_ns { parent.pid1_ids } else { 0 };
    let inh_pid1_exe = if same_pid_ns { parent.pid1_exe } else { 0 };
    let self_ids = p.cmdline.as_deref().map_or(0, |c| matcher.identities(c));
    let exe_ids = matcher.exe_identities(&p.exe);
    let mut flags = task_flags::FROM_PROC_SCAN | entered;
    if p.ns_init {
        flags |= task_flags::NS_INIT;
    }
    if p.cmdline.is_none() {
        flags |= task_flags::CMDLINE_TRUNCATED;
    }
    TaskInfo {
        self_ids,
        anc_ids: parent.anc_ids | self_ids,
        pid1_ids: inh_pid1 | if p.ns_init { self_ids } else { 0 },
        inh_anc: parent.anc_ids,
        inh_pid1,
        flags,
        img_pid1: if p.ns_init {
            self_ids
        } else if same_image && same_pid_ns {
            parent.img_pid1
        } else {
            0
        },
        exe_ids,
        anc_exe: parent.anc_exe | exe_ids,
        pid1_exe: inh_pid1_exe | if p.ns_init { exe_ids } else { 0 },
        inh_anc_exe: parent.anc_exe,
        inh_pid1_exe,
    }
}

/// Reads one process; `None` if it exited meanwhile.
fn read_proc(dir: &Path, pid: u32) -> Result<Option<Proc>, ScanError> {
    let Some(stat) = vanishable(read_to_end(&dir.join("stat"), usize::MAX), dir)? else {
        return Ok(None);
    };
    let ppid = parse_stat_ppid(&stat).ok_or_else(|| invalid(dir.join("stat"), "no ppid"))?;
    let Some(status) = vanishable(read_to_end(&dir.join("status"), usize::MAX), dir)? else {
        return Ok(None);
    };
    let ns_init = parse_ns_init(&status);
    let ns_level = parse_ns_level(&status);
    let task = dir.join("task");
    let Some(mut threads) = vanishable(numeric_entries(&task).map_err(|e| e.source), dir)? else {
        return Ok(None);
    };
    if threads.is_empty() {
        // Every thread already exited: nothing to write.
        return Ok(None);
    }
    threads.sort_unstable();
    // One byte more than the kernel reads tells "too long" apart from "exactly full" without
    // reading megabytes of arguments.
    let Some(mut raw) = vanishable(read_cmdline(dir), dir)? else {
        return Ok(None);
    };
    if raw.is_empty() {
        // A process whose main thread exited (pthread_exit) shows an empty command line:
        // /proc reads it through the leader's memory map, which is gone. Its other threads
        // still share the map, so read it through them. (Kernel threads are single-threaded:
        // they keep the empty command line.)
        for tid in threads.iter().filter(|&&tid| tid != pid) {
            let r = vanishable(read_cmdline(&task.join(tid.to_string())), dir)?;
            if let Some(r) = r.filter(|r| !r.is_empty()) {
                raw = r;
                break;
            }
        }
    }
    // Kernel threads have no executable; a process may also exit while we look.
    let exe = std::fs::read_link(dir.join("exe"))
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    Ok(Some(Proc {
        ppid,
        ns_init,
        ns_level,
        exe,
        cmdline: normalize_cmdline(&raw),
        threads,
    }))
}

/// Maps the errors of a process that exited while we read it to `None`.
pub(crate) fn vanishable<T>(r: io::Result<T>, dir: &Path) -> Result<Option<T>, ScanError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Ok(None)
        }
        Err(source) => Err(ScanError {
            path: dir.to_owned(),
            source,
        }),
    }
}

fn invalid(path: PathBuf, what: &str) -> ScanError {
    ScanError {
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
    }
}

pub(crate) fn read_cmdline(dir: &Path) -> io::Result<Vec<u8>> {
    read_to_end(&dir.join("cmdline"), CMDLINE_MAX + 1)
}

pub(crate) fn read_to_end(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?
        .take(limit.try_into().unwrap_or(u64::MAX))
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The entries of `dir` whose names are decimal numbers (pids or tids), unordered.
fn numeric_entries(dir: &Path) -> Result<Vec<u32>, ScanError> {
    let err = |source| ScanError {
        path: dir.to_owned(),
        source,
    };
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `parse` alone would accept "+12".
        if name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = name.parse()
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Field `n` of `/proc/<pid>/stat` (1-based, as proc(5) numbers them: 4 is the ppid, 7 the
/// tty), `n` ≥ 3. The comm (field 2) may hold spaces and parentheses, but the kernel prints
/// nothing after it that contains ')', so the fields from the third start after the last ')'.
pub(crate) fn stat_field<T: std::str::FromStr>(stat: &[u8], n: usize) -> Option<T> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// The ppid (4th field) of `/proc/<pid>/stat`: `pid (comm) state ppid ...`.
pub(crate) fn parse_stat_ppid(stat: &[u8]) -> Option<u32> {
    stat_field(stat, 4)
}

/// Whether the process is the init of its pid namespace: the innermost pid on the `NSpid:`
/// line of `/proc/<pid>/status` is 1. Kernels before 4.1 have no such line; there only the
/// global init is recognisable (its `Pid:` is 1).
pub(crate) fn parse_ns_init(status: &[u8]) -> bool {
    let text = String::from_utf8_lossy(status);
    let last_number = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_ascii_whitespace().last())
            .map(|n| n == "1")
    };
    last_number("NSpid:")
        .or_else(|| last_number("Pid:"))
        .unwrap_or(false)
}

/// Depth of the process's pid namespace: entries on the `NSpid:` line minus one (0 without it).
pub(crate) fn parse_ns_level(status: &[u8]) -> usize {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map_or(0, |v| v.split_ascii_whitespace().count().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Identities by exact command line.
    struct Table(Vec<(Vec<u8>, u64)>);

    impl CmdlineMatcher for Table {
        fn identities(&self, cmdline: &[u8]) -> u64 {
            self.0
                .iter()
                .filter(|(c, _)| c == cmdline)
                .map(|(_, b)| b)
                .sum()
        }
    }

    fn table(entries: &[(&[u8], u64)]) -> Table {
        Table(entries.iter().map(|&(c, b)| (c.to_vec(), b)).collect())
    }

    /// pid, comm, ppid, the `NSpid:` value, raw cmdline, tids.
    type Spec<'a> = (u32, &'a str, u32, &'a str, &'a [u8], &'a [u32]);

    /// A fake /proc in the temp directory, removed on drop.
    struct FakeProc(PathBuf);

    impl FakeProc {
        fn new() -> FakeProc {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("guard-procscan-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            FakeProc(dir)
        }

        fn add(&self, (pid, comm, ppid, nspid, cmdline, threads): Spec) {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(dir.join("task")).unwrap();
            let stat =
                format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 1 2 0 0 20 0\n");
            fs::write(dir.join("stat"), stat).unwrap();
            let status = format!(
                "Name:\t{comm}\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\n\
                 NSpid:\t{nspid}\nNSpgid:\t{nspid}\nThreads:\t{}\n",
                threads.len()
            );
            fs::write(dir.join("status"), status).unwrap();
            fs::write(dir.join("cmdline"), cmdline).unwrap();
            for tid in threads {
                fs::create_dir_all(dir.join("task").join(tid.to_string())).unwrap();
            }
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const SCAN: u64 = task_flags::FROM_PROC_SCAN;
    const INIT: u64 = task_flags::NS_INIT;
    const TRUNC: u64 = task_flags::CMDLINE_TRUNCATED;

    fn ti(self_ids: u64, anc: u64, pid1: u64, inh_anc: u64, inh_pid1: u64, flags: u64) -> TaskInfo {
        TaskInfo {
            self_ids,
            anc_ids: anc,
            pid1_ids: pid1,
            inh_anc,
            inh_pid1,
            flags,
            // No `exe` links in the fake tree: only a namespace's init runs a known image.
            img_pid1: if flags & INIT != 0 { self_ids } else { 0 },
            ..TaskInfo::default()
        }
    }

    /// Identities by exact executable path (and none by command line).
    struct Exes(Vec<(&'static str, u64)>);

    impl CmdlineMatcher for Exes {
        fn identities(&self, _cmdline: &[u8]) -> u64 {
            0
        }
        fn exe_identities(&self, exe: &[u8]) -> u64 {
            self.0
                .iter()
                .filter(|(e, _)| e.as_bytes() == exe)
                .map(|(_, b)| b)
                .sum()
        }
    }

    #[test]
    fn executable_ancestry_follows_the_fork_and_exec_programs() {
        let fake = FakeProc::new();
        #[rustfmt::skip]
        let specs: [(Spec, &str); 6] = [
            ((1, "init", 0, "1", b"init\0", &[1]), "/sbin/init"),
            ((100, "sshd", 1, "100", b"sshd\0", &[100]), "/usr/sbin/sshd"),
            ((101, "bash", 100, "101", b"bash\0", &[101]), "/bin/bash"),
            // A new pid namespace: its init runs tini, its child a shell.
            ((200, "tini", 1, "200\t1", b"tini\0", &[200]), "/tini"),
            ((201, "sh", 200, "201\t2", b"sh\0", &[201]), "/bin/sh"),
            // Entered into that namespace from the host: no pid1 identity there.
            ((202, "sh", 100, "202\t3", b"sh\0", &[202]), "/bin/sh"),
        ];
        for (spec, exe) in specs {
            fake.add(spec);
            std::os::unix::fs::symlink(exe, fake.0.join(spec.0.to_string()).join("exe")).unwrap();
        }
        let exes = Exes(vec![
            ("/sbin/init", 1),
            ("/usr/sbin/sshd", 2),
            ("/bin/bash", 4),
            ("/tini", 8),
            ("/bin/sh", 16),
        ]);
        let got: BTreeMap<u32, TaskInfo> = scan(&fake.0, &exes).unwrap().into_iter().collect();
        let words = |pid: u32| {
            let i = got[&pid];
            (
                i.exe_ids,
                i.anc_exe,
                i.pid1_exe,
                i.inh_anc_exe,
                i.inh_pid1_exe,
            )
        };
        assert_eq!(words(1), (1, 1, 1, 0, 0));
        assert_eq!(words(100), (2, 3, 1, 1, 1));
        assert_eq!(words(101), (4, 7, 1, 3, 1));
        assert_eq!(words(200), (8, 9, 8, 1, 0));
        assert_eq!(words(201), (16, 25, 8, 9, 8));
        assert_eq!(words(202), (16, 19, 0, 3, 0));
    }

    #[test]
    fn normalisation_matches_the_exec_program() {
        assert_eq!(normalize_cmdline(b""), Some(vec![]));
        assert_eq!(normalize_cmdline(b"\0"), Some(vec![]));
        assert_eq!(normalize_cmdline(b"sh\0-c\0a b\0").unwrap(), b"sh -c a b");
        // Only one trailing NUL goes; an empty last argument stays a space.
        assert_eq!(normalize_cmdline(b"x\0\0\0").unwrap(), b"x  ");
        // No trailing NUL (setproctitle): kept as is.
        assert_eq!(
            normalize_cmdline(b"nginx: worker").unwrap(),
            b"nginx: worker"
        );
        let full = vec![b'a'; CMDLINE_MAX];
        assert_eq!(normalize_cmdline(&full), Some(full.clone()));
        assert_eq!(normalize_cmdline(&[b'a'; CMDLINE_MAX + 1]), None);
    }

    #[test]
    fn dfa_table_matches_from_the_start_state() {
        use guard_ebpf::dfa_table::DfaTable;
        // Accepts exactly "ab" with identity bit 0b100: classes a=1, b=2, other=0;
        // states 0 dead, 1 start, 2 after "a", 3 after "ab".
        let mut class_of = [0u8; 256];
        (class_of[usize::from(b'a')], class_of[usize::from(b'b')]) = (1, 2);
        let trans = [0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
        let dfa = DfaTable::from_parts(&class_of, 3, &trans, &[0, 0, 0, 0b100]).unwrap();
        assert_eq!(dfa.identities(b"ab"), 0b100);
        assert_eq!(dfa.identities(b"a"), 0);
        assert_eq!(dfa.identities(b"abb"), 0);
        assert_eq!(dfa.identities(b""), 0);
    }

    #[test]
    fn parses_stat_and_status() {
        assert_eq!(parse_stat_ppid(b"6000 (a) (b) S 4242 1 1 0"), Some(4242));
        assert_eq!(parse_stat_ppid(b"7 (x)) R 3 7"), Some(3));
        assert_eq!(parse_stat_ppid(b"7 (x R 3 7"), None);
        assert_eq!(parse_stat_ppid(b"7 (x) R"), None);
        assert_eq!(parse_stat_ppid(b"7 (x) R -1"), None);
        assert_eq!(parse_stat_ppid(b""), None);
        assert!(parse_ns_init(b"Pid:\t4242\nNSpid:\t4242\t1\n"));
        assert!(!parse_ns_init(b"Pid:\t5000\nNSpid:\t5000\t7\n"));
        assert!(!parse_ns_init(b"NSpid:\t21\t1\t3\n"));
        assert!(parse_ns_init(b"Pid:\t1\n"), "pre-4.1 kernel, global init");
        assert!(!parse_ns_init(b"Pid:\t2\n"));
        assert!(!parse_ns_init(b"\xff\xfe garbage"));
    }

    #[test]
    fn scans_a_fake_proc_tree() {
        let fake = FakeProc::new();
        let long: Vec<u8> = [&b"python\0"[..], &[b'a'; CMDLINE_MAX]].concat();
        // One line per process reads as a table.
        #[rustfmt::skip]
        let specs: [Spec; 14] = [
            (1, "systemd", 0, "1", b"/sbin/init\0splash\0", &[1]),
            (2, "kthreadd", 0, "2", b"", &[2]),
            (37, "kworker/0:1-events", 2, "37", b"", &[37]),
            (900, "shim", 1, "900", b"containerd-shim\0-id\0abc\0", &[900, 902, 901]),
            (4242, "python", 900, "4242\t1", b"python\0app.py\0", &[4243, 4242]),
            (4300, "python", 4242, "4300\t2", b"python\0app.py\0--worker\0", &[4300]),
            (4400, "sh", 4300, "4400\t3", b"sh\0-c\0cat /etc/shadow\0", &[4400]),
            (5000, "bash", 900, "5000\t7", b"bash\0", &[5000]),
            (6000, "a) (b", 4242, "6000\t5", b"evil\0", &[6000]),
            (7000, "python", 4242, "7000\t6", &long, &[7000]),
            (8100, "bash", 12345, "8100", b"bash\0", &[8100]),
            // Main thread exited: the command line is read through another thread.
            (9000, "bash", 1, "9000", b"", &[9000, 9001, 9002]),
            // Exited between readdir and our reads: skipped.
            (8200, "gone", 1, "8200", b"", &[]),
            (8300, "dying", 1, "8300", b"", &[8300]),
        ];
        for spec in specs {
            fake.add(spec);
        }
        fs::write(fake.0.join("9000/task/9002/cmdline"), "bash\0").unwrap();
        fs::create_dir_all(fake.0.join("8000")).unwrap();
        fs::remove_file(fake.0.join("8300/cmdline")).unwrap();
        // Not processes.
        fs::create_dir_all(fake.0.join("self/task")).unwrap();
        fs::create_dir_all(fake.0.join("12abc")).unwrap();
        fs::write(fake.0.join("uptime"), "1.0 2.0\n").unwrap();

        let table = table(&[
            (b"/sbin/init splash", 1),
            (b"", 2),
            (b"containerd-shim -id abc", 4),
            (b"python app.py", 8),
            (b"python app.py --worker", 16),
            (b"sh -c cat /etc/shadow", 32),
            (b"bash", 64),
            (b"evil", 128),
        ]);
        let got = scan(&fake.0, &table).unwrap();

        let shim = ti(4, 5, 1, 1, 1, SCAN);
        // A new pid namespace's init: the host init's pid1 identities stop at the boundary.
        let app = ti(8, 13, 8, 5, 0, SCAN | INIT);
        let want = vec![
            (1, ti(1, 1, 1, 0, 0, SCAN | INIT)),
            (2, ti(2, 2, 0, 0, 0, SCAN)),
            (37, ti(2, 2, 0, 2, 0, SCAN)),
            (900, shim),
            (901, shim),
            (902, shim),
            (4242, app),
            (4243, app),
            (4300, ti(16, 29, 8, 13, 8, SCAN)),
            (4400, ti(32, 61, 8, 29, 8, SCAN)),
            // Entered from the host (kubectl exec): inherits the shim's ancestry, and no pid1
            // identity at all: it does not descend from its namespace's init.
            (5000, ti(64, 69, 0, 5, 0, SCAN | task_flags::ENTERED)),
            (6000, ti(128, 141, 8, 13, 8, SCAN)),
            (7000, ti(0, 13, 8, 13, 8, SCAN | TRUNC)),
            // Parent not listed: a root.
            (8100, ti(64, 64, 0, 0, 0, SCAN)),
            (9000, ti(64, 65, 1, 1, 1, SCAN)),
            (9001, ti(64, 65, 1, 1, 1, SCAN)),
            (9002, ti(64, 65, 1, 1, 1, SCAN)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn ppid_cycles_terminate() {
        let fake = FakeProc::new();
        fake.add((10, "a", 11, "10", b"a\0", &[10]));
        fake.add((11, "b", 10, "11", b"b\0", &[11]));
        fake.add((12, "c", 11, "12", b"c\0", &[12]));
        let got = scan(&fake.0, &table(&[(b"a", 1), (b"b", 2), (b"c", 4)])).unwrap();
        // The walk from 10 reaches 11, whose parent is already on the walk: 11 is the root.
        let want = vec![
            (10, ti(1, 3, 0, 2, 0, SCAN)),
            (11, ti(2, 2, 0, 0, 0, SCAN)),
            (12, ti(4, 6, 0, 2, 0, SCAN)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn other_errors_are_reported() {
        let fake = FakeProc::new();
        fake.add((10, "a", 1, "10", b"a\0", &[10]));
        fake.add((11, "b", 1, "11", b"b\0", &[11]));
        // Reading a directory fails with EISDIR, which is not a process exiting.
        fs::remove_file(fake.0.join("11/cmdline")).unwrap();
        fs::create_dir(fake.0.join("11/cmdline")).unwrap();
        let err = scan(&fake.0, &table(&[])).unwrap_err();
        assert_eq!(err.path, fake.0.join("11"));
        assert_eq!(err.source.raw_os_error(), Some(libc::EISDIR));

        fs::remove_dir(fake.0.join("11/cmdline")).unwrap();
        fs::write(fake.0.join("11/stat"), "11 (b S 1").unwrap();
        let err = scan(&fake.0, &table(&[])).unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::InvalidData);

        let missing = fake.0.join("nope");
        assert_eq!(scan(&missing, &table(&[])).unwrap_err().path, missing);
    }

    #[test]
    fn finds_this_process_and_its_threads_in_real_proc() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tx.send(fs::read_link("/proc/thread-self").unwrap())
                .unwrap();
            let _ = done_rx.recv();
        });
        // "/proc/thread-self" reads "<pid>/task/<tid>".
        let tid_of =
            |link: PathBuf| -> u32 { link.file_name().unwrap().to_str().unwrap().parse().unwrap() };
        let worker_tid = tid_of(rx.recv().unwrap());
        let my_tid = tid_of(fs::read_link("/proc/thread-self").unwrap());

        let raw = fs::read("/proc/self/cmdline").unwrap();
        let me = normalize_cmdline(&raw);
        let matcher = Table(vec![(me.clone().unwrap_or_default(), 1)]);
        let got = scan(Path::new("/proc"), &matcher).unwrap();
        let _ = done_tx.send(());
        worker.join().unwrap();

        let find = |tid: u32| got.iter().find(|(t, _)| *t == tid).map(|(_, i)| *i);
        let pid = std::process::id();
        let mine = find(pid).expect("own pid scanned");
        assert_eq!(find(my_tid), Some(mine));
        assert_eq!(find(worker_tid), Some(mine));
        assert!(mine.flags & SCAN != 0);
        let (want_self, trunc) = if me.is_some() { (1, 0) } else { (0, TRUNC) };
        assert_eq!(mine.self_ids, want_self);
        assert_eq!(mine.flags & TRUNC, trunc);
        assert_eq!(mine.anc_ids & 1, want_self);
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by tid, unique"
        );
    }
}
