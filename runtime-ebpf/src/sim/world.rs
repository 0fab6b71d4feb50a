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
///
/// Built with [`World::task`] and [`World::open`], laid out once by [`World::lay_out`]; after
/// that, the `add_task`/`set_*`/`install_file` methods change it the way the kernel would
/// (a fork adds a task, an exec replaces its image, an open fills a descriptor), so that the
/// programs run on a world that evolves between their runs.
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
    /// Each task's fd array (`fdtable.fd`), where an open installs its file.
    fd_array: BTreeMap<u32, u64>,
    dentries: BTreeMap<String, u64>,
    root_mount: u64,
    /// `&root_mount.mnt`: what `path.mnt` holds.
    vfsmount: u64,
    laid_out: bool,
}

/// File descriptors per task (`fdtable.max_fds`).
pub const MAX_FDS: u32 = 64;

fn put(mem: &mut Memory, base: u64, root: &str, path: &[&str], v: &[u8]) -> Result<(), SimError> {
    let off = layout::offset(root, path).map_err(SimError::World)?;
    mem.poke(base + u64::from(off), v)
}

fn alloc(mem: &mut Memory, root: &str, what: String, extra: u32) -> Result<u64, SimError> {
    let (size, _) = layout::struct_layout(root).map_err(SimError::World)?;
    Ok(mem.alloc(what, Kind::Kernel, vec![0; (size + extra) as usize]))
}

/// A NUL-terminated kernel string.
fn kstring(mem: &mut Memory, what: String, s: &str) -> u64 {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    mem.alloc(what, Kind::Kernel, bytes)
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

    fn task_mut(&mut self, pid: u32) -> Result<&mut Task, SimError> {
        self.tasks
            .iter_mut()
            .find(|t| t.pid == pid)
            .ok_or_else(|| SimError::World(format!("no task {pid}")))
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
        if name.is_empty() || name.len() > 255 {
            return Err(SimError::World(format!(
                "path `{path}`: a component is empty or longer than 255 bytes"
            )));
        }
        let d = alloc(mem, "dentry", format!("dentry {key}"), 0)?;
        let s = kstring(mem, format!("name {name}"), name);
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

    /// A `struct file` for `path` (on the root mount) opened with `f_mode`.
    pub fn file_struct(
        &mut self,
        mem: &mut Memory,
        path: &str,
        f_mode: u32,
    ) -> Result<u64, SimError> {
        if !self.laid_out {
            return Err(SimError::World("the world is not laid out yet".into()));
        }
        let f = alloc(mem, "file", format!("file {path}"), 0)?;
        let d = self.dentry(mem, path)?;
        put(mem, f, "file", &["f_path", "dentry"], &d.to_le_bytes())?;
        put(
            mem,
            f,
            "file",
            &["f_path", "mnt"],
            &self.vfsmount.to_le_bytes(),
        )?;
        put(mem, f, "file", &["f_mode"], &f_mode.to_le_bytes())?;
        Ok(f)
    }

    /// Lays the world out in `mem`: the root mount, every task (its mm, files, fs, pid and
    /// signal) and every open file.
    pub fn lay_out(&mut self, mem: &mut Memory) -> Result<(), SimError> {
        if self.laid_out {
            return Err(SimError::World("the world is laid out twice".into()));
        }
        let root = self.dentry(mem, "/")?;
        let mount = alloc(mem, "mount", "root mount".into(), 0)?;
        self.vfsmount =
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
        self.laid_out = true;
        // Every task_struct first: a task points at its parent and its leader.
        for t in &self.tasks {
            let a = alloc(mem, "task_struct", format!("task {}", t.pid), 0)?;
            self.task_addr.insert(t.pid, a);
        }
        for t in self.tasks.clone() {
            self.fill_task(mem, &t)?;
        }
        for (pid, fd, path, mode) in self.files.clone() {
            let f = self.file_struct(mem, &path, mode)?;
            self.set_fd(mem, pid, fd, f)?;
        }
        Ok(())
    }

    /// Adds a task to a laid-out world (a fork): its parent must exist.
    pub fn add_task(&mut self, mem: &mut Memory, t: Task) -> Result<(), SimError> {
        if !self.laid_out {
            return Err(SimError::World("the world is not laid out yet".into()));
        }
        if self.task_by_pid(t.pid).is_some() {
            return Err(SimError::World(format!("task {} exists", t.pid)));
        }
        if let Some(p) = t.parent
            && !self.task_addr.contains_key(&p)
        {
            return Err(SimError::World(format!("parent {p} of {} unknown", t.pid)));
        }
        let a = alloc(mem, "task_struct", format!("task {}", t.pid), 0)?;
        self.task_addr.insert(t.pid, a);
        self.tasks.push(t.clone());
        self.fill_task(mem, &t)
    }

    fn addr(&self, pid: u32) -> Result<u64, SimError> {
        self.task_addr
            .get(&pid)
            .copied()
            .ok_or_else(|| SimError::World(format!("task {pid} is not laid out")))
    }

    /// Writes task `t` into its task_struct and the objects it points to.
    fn fill_task(&mut self, mem: &mut Memory, t: &Task) -> Result<(), SimError> {
        let a = self.addr(t.pid)?;
        let parent = match t.parent {
            Some(p) => self
                .addr(p)
                .map_err(|_| SimError::World(format!("parent {p} of {} unknown", t.pid)))?,
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
        self.write_image(mem, t)?;
        // files: an empty fd array, filled by opens.
        let fd_array = mem.alloc(
            format!("fd array of {}", t.pid),
            Kind::Kernel,
            vec![0u8; MAX_FDS as usize * 8],
        );
        self.fd_array.insert(t.pid, fd_array);
        let fdt = alloc(mem, "fdtable", format!("fdtable of {}", t.pid), 0)?;
        put(mem, fdt, "fdtable", &["max_fds"], &MAX_FDS.to_le_bytes())?;
        put(mem, fdt, "fdtable", &["fd"], &fd_array.to_le_bytes())?;
        let files = alloc(mem, "files_struct", format!("files of {}", t.pid), 0)?;
        put(mem, files, "files_struct", &["fdt"], &fdt.to_le_bytes())?;
        put(mem, a, "task_struct", &["files"], &files.to_le_bytes())?;
        let fs = alloc(mem, "fs_struct", format!("fs of {}", t.pid), 0)?;
        let root = self.dentry(mem, "/")?;
        put(
            mem,
            fs,
            "fs_struct",
            &["root", "mnt"],
            &self.vfsmount.to_le_bytes(),
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
        self.write_tty(mem, t)
    }

    /// `comm` and a fresh mm whose argument area holds `argv` (what an exec sets up).
    fn write_image(&mut self, mem: &mut Memory, t: &Task) -> Result<(), SimError> {
        let a = self.addr(t.pid)?;
        let mut comm = [0u8; 16];
        for (c, b) in comm.iter_mut().zip(t.comm.bytes().take(15)) {
            *c = b;
        }
        put(mem, a, "task_struct", &["comm"], &comm)?;
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
        put(mem, a, "task_struct", &["mm"], &mm.to_le_bytes())
    }

    /// A fresh `signal_struct` with the task's controlling terminal, if it has one.
    fn write_tty(&mut self, mem: &mut Memory, t: &Task) -> Result<(), SimError> {
        let a = self.addr(t.pid)?;
        let signal = alloc(mem, "signal_struct", format!("signal of {}", t.pid), 0)?;
        if let Some(index) = t.tty {
            let tty = alloc(mem, "tty_struct", format!("tty {index}"), 0)?;
            put(mem, tty, "tty_struct", &["index"], &index.to_le_bytes())?;
            put(mem, signal, "signal_struct", &["tty"], &tty.to_le_bytes())?;
        }
        put(mem, a, "task_struct", &["signal"], &signal.to_le_bytes())
    }

    /// An exec: task `pid` now runs `argv` under the name `comm`.
    pub fn set_image(
        &mut self,
        mem: &mut Memory,
        pid: u32,
        argv: &[String],
        comm: &str,
    ) -> Result<(), SimError> {
        let t = self.task_mut(pid)?;
        t.argv = argv.to_vec();
        t.comm = comm.chars().take(15).collect();
        let t = t.clone();
        self.write_image(mem, &t)
    }

    /// Changes the real uid (`setuid`, as `nsenter -S` does before its exec).
    pub fn set_uid(&mut self, pid: u32, uid: u32) -> Result<(), SimError> {
        self.task_mut(pid)?.uid = uid;
        Ok(())
    }

    /// Moves the task to cgroup `id` (what `bpf_get_current_cgroup_id` answers).
    pub fn set_cgroup(&mut self, pid: u32, id: u64) -> Result<(), SimError> {
        self.task_mut(pid)?.cgroup = id;
        Ok(())
    }

    /// Gives the task a controlling terminal, or takes it away (`setsid`).
    pub fn set_tty(
        &mut self,
        mem: &mut Memory,
        pid: u32,
        tty: Option<i32>,
    ) -> Result<(), SimError> {
        let t = self.task_mut(pid)?;
        t.tty = tty;
        let t = t.clone();
        self.write_tty(mem, &t)
    }

    fn set_fd(&mut self, mem: &mut Memory, pid: u32, fd: u32, file: u64) -> Result<(), SimError> {
        if fd >= MAX_FDS {
            return Err(SimError::World(format!(
                "descriptor {fd} of {pid}: the mocked fd table holds {MAX_FDS}"
            )));
        }
        let array = *self
            .fd_array
            .get(&pid)
            .ok_or_else(|| SimError::World(format!("no task {pid}")))?;
        mem.poke(array + 8 * u64::from(fd), &file.to_le_bytes())?;
        self.file_addr.insert((pid, fd), file);
        Ok(())
    }

    /// An open: `path` at the lowest free descriptor from 3 up; returns the descriptor.
    pub fn install_file(
        &mut self,
        mem: &mut Memory,
        pid: u32,
        path: &str,
        f_mode: u32,
    ) -> Result<u32, SimError> {
        let f = self.file_struct(mem, path, f_mode)?;
        self.install(mem, pid, f, path, f_mode)
    }

    /// Installs the `struct file` at `file` (of `path`) at the lowest free descriptor from 3.
    pub fn install(
        &mut self,
        mem: &mut Memory,
        pid: u32,
        file: u64,
        path: &str,
        f_mode: u32,
    ) -> Result<u32, SimError> {
        let fd = (3..MAX_FDS)
            .find(|fd| !self.file_addr.contains_key(&(pid, *fd)))
            .ok_or_else(|| SimError::World(format!("task {pid} has every descriptor open")))?;
        self.set_fd(mem, pid, fd, file)?;
        self.files.push((pid, fd, path.to_string(), f_mode));
        Ok(fd)
    }
}
