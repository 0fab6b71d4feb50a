//! The mocked kernel: tasks and open files, described with a small builder and laid out in
//! the simulator's memory with the simulator's struct layout ([`super::layout`]), so the
//! programs' relocated loads find them.
//!
//! One mount (the root), a dentry per path component, `/` its own parent; files are opened by
//! a task at a descriptor of its fd table.

use std::collections::BTreeMap;

use super::SimError;
use super::layout;
use super::mem::{Kind, Memory};

/// `FMODE_READ`, `FMODE_WRITE` of `file.f_mode`.
pub const FMODE_READ: u32 = 1;
pub const FMODE_WRITE: u32 = 2;

/// One process (a thread-group leader).
#[derive(Clone, Debug)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// Parent pid; `None`: its own parent (like pid 1).
    pub parent: Option<u32>,
    /// `argv`, joined with NULs at `mm.arg_start..arg_end`.
    pub argv: Vec<String>,
    /// Depth of its pid namespace (0: the initial namespace) and its pid there.
    pub ns_level: u32,
    pub ns_pid: u32,
    /// `signal->tty->index`, or no controlling terminal.
    pub tty: Option<i32>,
    pub cgroup: u64,
}

impl Task {
    /// A process of the initial namespace, uid 0, no terminal, its comm from `argv[0]`.
    pub fn new(pid: u32, argv: &[&str]) -> Task {
        let comm = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).chars().take(15).collect())
            .unwrap_or_default();
        Task {
            pid,
            tgid: pid,
            uid: 0,
            gid: 0,
            comm,
            parent: None,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ns_level: 0,
            ns_pid: pid,
            tty: None,
            cgroup: 1,
        }
    }

    pub fn parent(mut self, pid: u32) -> Task {
        self.parent = Some(pid);
        self
    }

    /// Puts the task in a child pid namespace at `level` with pid `ns_pid` there (1: init).
    pub fn in_namespace(mut self, level: u32, ns_pid: u32) -> Task {
        self.ns_level = level;
        self.ns_pid = ns_pid;
        self
    }

    pub fn uid(mut self, uid: u32) -> Task {
        self.uid = uid;
        self
    }

    pub fn tty(mut self, index: i32) -> Task {
        self.tty = Some(index);
        self
    }
}

/// The world as described, and once laid out, where each object is.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub tasks: Vec<Task>,
    /// (pid, fd, path, f_mode)
    pub files: Vec<(u32, u32, String, u32)>,
    /// The task the helpers answer for.
    pub current: u32,
    /// Kernel addresses, filled by [`World::lay_out`].
    pub task_addr: BTreeMap<u32, u64>,
    pub file_addr: BTreeMap<(u32, u32), u64>,
    dentries: BTreeMap<String, u64>,
    root_mount: u64,
}

/// File descriptors per task (`fdtable.max_fds`).
const MAX_FDS: u32 = 64;

fn put(mem: &mut Memory, base: u64, root: &str, path: &[&str], v: &[u8]) -> Result<(), SimError> {
    let off = layout::offset(root, path).map_err(SimError::World)?;
    mem.poke(base + u64::from(off), v)
}

fn alloc(mem: &mut Memory, root: &str, what: String, extra: u32) -> Result<u64, SimError> {
    let (size, _) = layout::struct_layout(root).map_err(SimError::World)?;
    Ok(mem.alloc(what, Kind::Kernel, vec![0; (size + extra) as usize]))
}

impl World {
    pub fn new() -> World {
        World::default()
    }

    pub fn task(mut self, t: Task) -> World {
        if self.tasks.is_empty() {
            self.current = t.pid;
        }
        self.tasks.push(t);
        self
    }

    /// `pid` has `path` open at `fd` with `f_mode` ([`FMODE_READ`] | [`FMODE_WRITE`]).
    pub fn open(mut self, pid: u32, fd: u32, path: &str, f_mode: u32) -> World {
        self.files.push((pid, fd, path.to_string(), f_mode));
        self
    }

    pub fn task_by_pid(&self, pid: u32) -> Option<&Task> {
        self.tasks.iter().find(|t| t.pid == pid)
    }

    pub fn current_task(&self) -> Result<&Task, SimError> {
        self.task_by_pid(self.current)
            .ok_or_else(|| SimError::World(format!("no current task {}", self.current)))
    }

    /// The dentry of absolute `path`, creating the chain up to `/`.
    pub fn dentry(&mut self, mem: &mut Memory, path: &str) -> Result<u64, SimError> {
        let path = path.trim_end_matches('/');
        let key = if path.is_empty() { "/" } else { path };
        if let Some(&d) = self.dentries.get(key) {
            return Ok(d);
        }
        let (parent, name) = match key.rsplit_once('/') {
            _ if key == "/" => (None, "/"),
            Some((p, n)) => (
                Some(self.dentry(mem, if p.is_empty() { "/" } else { p })?),
                n,
            ),
            None => return Err(SimError::World(format!("path `{path}` is not absolute"))),
        };
        let d = alloc(mem, "dentry", format!("dentry {key}"), 0)?;
        let mut bytes = name.as_bytes().to_vec();
        bytes.push(0);
        let s = mem.alloc(format!("name {name}"), Kind::Kernel, bytes);
        put(
            mem,
            d,
            "dentry",
            &["d_parent"],
            &parent.unwrap_or(d).to_le_bytes(),
        )?;
        put(
            mem,
            d,
            "dentry",
            &["d_name", "len"],
            &(name.len() as u32).to_le_bytes(),
        )?;
        put(mem, d, "dentry", &["d_name", "name"], &s.to_le_bytes())?;
        self.dentries.insert(key.to_string(), d);
        Ok(d)
    }

    /// Lays the world out in `mem`: every task, its mm, files, fs, pid and signal.
    pub fn lay_out(&mut self, mem: &mut Memory) -> Result<(), SimError> {
        let root = self.dentry(mem, "/")?;
        let mount = alloc(mem, "mount", "root mount".into(), 0)?;
        let vfsmount =
            mount + u64::from(layout::offset("mount", &["mnt"]).map_err(SimError::World)?);
        put(mem, mount, "mount", &["mnt_parent"], &mount.to_le_bytes())?;
        put(
            mem,
            mount,
            "mount",
            &["mnt_mountpoint"],
            &root.to_le_bytes(),
        )?;
        put(
            mem,
            mount,
            "mount",
            &["mnt", "mnt_root"],
            &root.to_le_bytes(),
        )?;
        self.root_mount = mount;
        for t in &self.tasks {
            let a = alloc(mem, "task_struct", format!("task {}", t.pid), 0)?;
            self.task_addr.insert(t.pid, a);
        }
        for (pid, fd, path, mode) in self.files.clone() {
            let f = alloc(mem, "file", format!("file {path}"), 0)?;
            let d = self.dentry(mem, &path)?;
            put(mem, f, "file", &["f_path", "dentry"], &d.to_le_bytes())?;
            put(mem, f, "file", &["f_path", "mnt"], &vfsmount.to_le_bytes())?;
            put(mem, f, "file", &["f_mode"], &mode.to_le_bytes())?;
            self.file_addr.insert((pid, fd), f);
        }
        for t in self.tasks.clone() {
            let a = self.task_addr[&t.pid];
            let parent = match t.parent {
                Some(p) => *self
                    .task_addr
                    .get(&p)
                    .ok_or_else(|| SimError::World(format!("parent {p} of {} unknown", t.pid)))?,
                None => a,
            };
            let leader = self.task_addr.get(&t.tgid).copied().unwrap_or(a);
            put(mem, a, "task_struct", &["pid"], &t.pid.to_le_bytes())?;
            put(mem, a, "task_struct", &["tgid"], &t.tgid.to_le_bytes())?;
            put(
                mem,
                a,
                "task_struct",
                &["real_parent"],
                &parent.to_le_bytes(),
            )?;
            put(
                mem,
                a,
                "task_struct",
                &["group_leader"],
                &leader.to_le_bytes(),
            )?;
            let mut comm = [0u8; 16];
            for (c, b) in comm.iter_mut().zip(t.comm.bytes().take(15)) {
                *c = b;
            }
            put(mem, a, "task_struct", &["comm"], &comm)?;
            // mm: argv in user memory.
            let mut args = Vec::new();
            for s in &t.argv {
                args.extend_from_slice(s.as_bytes());
                args.push(0);
            }
            let len = args.len() as u64;
            let user = mem.alloc(format!("argv of {}", t.pid), Kind::User, args);
            let mm = alloc(mem, "mm_struct", format!("mm of {}", t.pid), 0)?;
            put(mem, mm, "mm_struct", &["arg_start"], &user.to_le_bytes())?;
            put(
                mem,
                mm,
                "mm_struct",
                &["arg_end"],
                &(user + len).to_le_bytes(),
            )?;
            put(mem, a, "task_struct", &["mm"], &mm.to_le_bytes())?;
            // files: the fd array.
            let mut fds = vec![0u8; MAX_FDS as usize * 8];
            for ((p, fd), f) in &self.file_addr {
                if *p == t.pid && *fd < MAX_FDS {
                    fds[*fd as usize * 8..][..8].copy_from_slice(&f.to_le_bytes());
                }
            }
            let fd_array = mem.alloc(format!("fd array of {}", t.pid), Kind::Kernel, fds);
            let fdt = alloc(mem, "fdtable", format!("fdtable of {}", t.pid), 0)?;
            put(mem, fdt, "fdtable", &["max_fds"], &MAX_FDS.to_le_bytes())?;
            put(mem, fdt, "fdtable", &["fd"], &fd_array.to_le_bytes())?;
            let files = alloc(mem, "files_struct", format!("files of {}", t.pid), 0)?;
            put(mem, files, "files_struct", &["fdt"], &fdt.to_le_bytes())?;
            put(mem, a, "task_struct", &["files"], &files.to_le_bytes())?;
            let fs = alloc(mem, "fs_struct", format!("fs of {}", t.pid), 0)?;
            put(
                mem,
                fs,
                "fs_struct",
                &["root", "mnt"],
                &vfsmount.to_le_bytes(),
            )?;
            put(
                mem,
                fs,
                "fs_struct",
                &["root", "dentry"],
                &root.to_le_bytes(),
            )?;
            put(mem, a, "task_struct", &["fs"], &fs.to_le_bytes())?;
            // pid: numbers[0..=level], a flexible array (16 bytes per struct upid).
            let pid = alloc(mem, "pid", format!("pid {}", t.pid), 16 * t.ns_level)?;
            put(mem, pid, "pid", &["level"], &t.ns_level.to_le_bytes())?;
            let numbers =
                pid + u64::from(layout::offset("pid", &["numbers"]).map_err(SimError::World)?);
            mem.poke(numbers, &t.pid.to_le_bytes())?;
            mem.poke(
                numbers + 16 * u64::from(t.ns_level),
                &t.ns_pid.to_le_bytes(),
            )?;
            put(mem, a, "task_struct", &["thread_pid"], &pid.to_le_bytes())?;
            let signal = alloc(mem, "signal_struct", format!("signal of {}", t.pid), 0)?;
            if let Some(index) = t.tty {
                let tty = alloc(mem, "tty_struct", format!("tty {index}"), 0)?;
                put(mem, tty, "tty_struct", &["index"], &index.to_le_bytes())?;
                put(mem, signal, "signal_struct", &["tty"], &tty.to_le_bytes())?;
            }
            put(mem, a, "task_struct", &["signal"], &signal.to_le_bytes())?;
        }
        Ok(())
    }
}
