//! The identity store: where the tracking programs keep each task's identity bits.
//!
//! The object defines the store's map once, as BPF task storage, and carries the programs that
//! touch it twice, once per store. Task storage (Linux 5.11+) has no capacity a fork storm
//! could exhaust (a task without identity is judged fail-closed, which would kill the protected
//! program), is freed by the kernel with its task, and is keyed by no reusable thread id. Where
//! the kernel cannot create it, or refuses the programs that use it, the map is created as a
//! hash map keyed by thread id instead (its type is rewritten in the object's BTF before aya
//! reads it) and the hash programs are loaded.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Result, anyhow};
use aya::maps::Map;
use guard_ebpf::abi::{self, IdentityStore, TaskInfo};

/// `--identity-store`: let the kernel decide, or insist on one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// Task storage where the kernel creates it and accepts the programs using it, else the
    /// hash map (said loudly).
    #[default]
    Auto,
    /// Task storage or nothing.
    Task,
    /// The hash map keyed by thread id, even where task storage is available.
    Hash,
}

pub fn describe(store: IdentityStore) -> &'static str {
    match store {
        IdentityStore::Task => "task storage (per task, freed with the task, no capacity limit)",
        IdentityStore::Hash => "hash map keyed by thread id (at most 1,048,576 tasks)",
    }
}

/// The object's bytes for `store`: the identity map's type set to what the store needs.
pub fn object_for(bytes: &[u8], store: IdentityStore) -> Result<Vec<u8>> {
    let mut bytes = bytes.to_vec();
    let map_type = match store {
        IdentityStore::Task => abi::MAP_TYPE_TASK_STORAGE,
        IdentityStore::Hash => abi::MAP_TYPE_HASH,
    };
    guard_ebpf::elf::set_map_type(&mut bytes, abi::MAP_TASKS, map_type)
        .map_err(|e| anyhow!("the object's identity map is unusable: {e}"))?;
    Ok(bytes)
}

/// Whether the programs of `store` are to be loaded: those written for it, and those that do
/// not touch the store.
pub fn selects(p: &abi::ProgramMeta, store: IdentityStore) -> bool {
    p.store.is_none_or(|s| s == store)
}

/// `BPF_NOEXIST`: an entry the tracking programs wrote since they were attached is newer than
/// the scan and is kept.
const BPF_NOEXIST: u64 = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
/// `PIDFD_THREAD` (Linux 6.9+): a pidfd for a thread that is not its group's leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Writes one running task's identity. `Ok(false)`: the entry existed (written by a tracking
/// program since it was attached), or the task is gone, or (task storage on a kernel before
/// 6.9) it is a thread other than its group's leader, which no pidfd can name: the programs
/// judge it with its leader's identity.
pub fn seed_one(map: &mut Map, tid: u32, info: &TaskInfo) -> Result<bool> {
    let (fd, key): (_, Vec<u8>) = match map {
        Map::HashMap(data) => (data.fd().as_fd().as_raw_fd(), tid.to_le_bytes().to_vec()),
        Map::Unsupported(data) => {
            let Some(pidfd) = pidfd(tid) else {
                return Ok(false);
            };
            let fd = data.fd().as_fd().as_raw_fd();
            // The kernel reads the key (the pidfd) during the call; `pidfd` lives until then.
            let key = pidfd.as_raw_fd().to_le_bytes().to_vec();
            return update(fd, &key, info).map(|()| true).or_else(exists);
        }
        _ => return Err(anyhow!("map {} is of an unexpected type", abi::MAP_TASKS)),
    };
    update(fd, &key, info).map(|()| true).or_else(exists)
}

fn exists(e: std::io::Error) -> Result<bool> {
    match e.raw_os_error() {
        // ENOENT: the pidfd's task exited since the scan.
        Some(libc::EEXIST | libc::ENOENT | libc::ESRCH) => Ok(false),
        _ => Err(anyhow!(e).context("cannot record a running process's identity")),
    }
}

/// A pidfd for thread `tid`: the group's leader's with no flag; another thread's with
/// `PIDFD_THREAD` where the kernel has it. `None` for a thread gone or not nameable.
fn pidfd(tid: u32) -> Option<OwnedFd> {
    for flags in [0, PIDFD_THREAD] {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, flags) };
        if fd >= 0 {
            // SAFETY: a descriptor the kernel just returned, owned by nobody else.
            return Some(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None;
        }
    }
    None
}

/// `bpf(BPF_MAP_UPDATE_ELEM)` with `BPF_NOEXIST`. aya has no typed map for task storage (its
/// `Map::Unsupported`), and its key is a pidfd, so the call is made here.
fn update(map_fd: i32, key: &[u8], info: &TaskInfo) -> std::io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = Attr {
        map_fd: map_fd as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: std::ptr::from_ref(info) as u64,
        flags: BPF_NOEXIST,
    };
    // SAFETY: `attr` is a valid `bpf_attr` prefix for this command; key and value point to
    // memory of the map's key and value sizes (4 bytes; `TaskInfo`) that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            std::ptr::from_ref(&attr),
            core::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
