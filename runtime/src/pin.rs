//! Policies pinned under bpffs, so that enforcement outlives the agent that loaded it.
//!
//! Each loaded policy is a directory `<root>/<name>/` holding its links (the attachments: while
//! a link is pinned, its program stays attached), its programs, the maps guard-run reads
//! (`GUARD_*`), and two maps guard-run creates itself: `info`, the [`PinnedInfo`] as JSON (so
//! `status` and adoption need no object file; bpffs holds no regular files), and `agent`, the
//! reader's bookkeeping ([`AgentSlot`]). A directory is complete once `info` is pinned; a load
//! builds it under a staging name (`_<pid>_<name>`) and renames it into place, so a failed or
//! interrupted load leaves no half policy under the policy's name.
//!
//! Locks: the root directory is `flock`ed exclusively while a load, reload or unload changes
//! it; a running agent holds an exclusive `flock` on its policy's directory, which tells
//! `status` (and a second agent) that someone reads the policy's events.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use guard_ebpf::abi::{self, Backend, IdentityStore, Metadata};
use serde::{Deserialize, Serialize};

pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/guard";
const INFO: &str = "info";
const AGENT: &str = "agent";
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Bytes per entry of the `info` map (entry 0 holds the length).
const CHUNK: usize = 4096;

/// What a pinned policy is, without its object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinnedInfo {
    pub name: String,
    /// SHA3-256 of the object file, hex: the same object is adopted, another one reloaded.
    pub object_sha3: String,
    /// The object's path when it was loaded (for the operator; never read again).
    pub object_path: String,
    pub backend: Backend,
    /// Where the tracking programs keep identities. Policies pinned before guard had task
    /// storage used the hash map.
    #[serde(default = "hash_store")]
    pub store: IdentityStore,
    pub deny_as_kill: bool,
    /// Loaded with `--audit`: nothing is carried out. Loading in the other mode replaces the
    /// policy (without a gap) instead of adopting it.
    #[serde(default)]
    pub audit: bool,
    /// Seconds since the epoch.
    pub loaded_at: u64,
    /// `guard-run <version>` and its pid.
    pub loaded_by: String,
    /// `user("name")` subjects as resolved when loaded.
    pub users: Vec<(String, u32)>,
    pub meta: Metadata,
}

fn hash_store() -> IdentityStore {
    IdentityStore::Hash
}

/// Entries of the `agent` map, written by whichever agent reads the policy.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum AgentSlot {
    /// The kernel's ring-buffer drop counter when a reader last looked (once a second): drops
    /// past it happened while nobody read.
    DroppedSeen = 0,
    /// Events read, by every agent, in total.
    EventsRead = 1,
    /// When a reader last looked, seconds since the epoch.
    LastSeen = 2,
    /// The pid of the last reader.
    ReaderPid = 3,
}
const AGENT_SLOTS: u32 = 4;

pub fn sha3_hex(bytes: &[u8]) -> String {
    use sha3::{Digest, Sha3_256};
    Sha3_256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A policy name becomes a directory name on bpffs: letters, digits, `_` and `-`, starting with
/// a letter or digit (bpffs refuses names with a dot; a leading `_` marks staging directories).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !ok {
        bail!(
            "`{name}` is not a usable policy name: use letters, digits, `_` and `-`, starting \
             with a letter or digit (choose one with --name)"
        );
    }
    Ok(())
}

/// The name a policy gets from its object's file: the stem, with what a name cannot hold
/// replaced by `_` (bpffs refuses dots).
pub fn name_from_stem(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The pin root, locked against other loads, reloads and unloads while this value lives.
pub struct Root {
    pub path: PathBuf,
    _lock: File,
}

impl Root {
    /// Creates the root if needed; it must be on bpffs.
    pub fn lock(path: &Path) -> Result<Root> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the pin root `{}`", path.display()))?;
        check_bpffs(path)?;
        let lock = File::open(path)
            .with_context(|| format!("cannot open the pin root `{}`", path.display()))?;
        flock(&lock, libc::LOCK_EX)
            .with_context(|| format!("cannot lock the pin root `{}`", path.display()))?;
        Ok(Root {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn policy(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A staging directory next to the policy's (`_<pid>_<name>`; policy names never start
    /// with `_`), for the version on its way in, and then for the one on its way out.
    pub fn staging(&self, name: &str) -> PathBuf {
        self.path.join(format!("_{}_{name}", std::process::id()))
    }

    /// Removes what loads of `name` that died midway left behind (a staging directory whose
    /// process is gone): its links detach, the policy's own directory is untouched.
    pub fn clean_leftovers(&self, name: &str) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for e in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some((pid, of)) = file.strip_prefix('_').and_then(|rest| rest.split_once('_'))
            else {
                continue;
            };
            let alive = pid
                .parse::<u32>()
                .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if of == name && !alive && remove(&e.path()).is_ok() {
                removed.push(e.path());
            }
        }
        removed
    }

    /// The names of the policies pinned here, sorted.
    pub fn names(path: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('_'))
            .collect();
        v.sort();
        v
    }
}

fn flock(f: &File, op: i32) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor this File owns.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn check_bpffs(path: &Path) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| anyhow!("the pin root `{}` contains a NUL byte", path.display()))?;
    // SAFETY: statfs writes into the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot inspect the pin root `{}`", path.display()));
    }
    if st.f_type as i64 != BPF_FS_MAGIC {
        bail!(
            "the pin root `{}` is not on a BPF file system: mount one there (`mount -t bpf bpf \
             DIR`) or choose a --pin-root under /sys/fs/bpf",
            path.display()
        );
    }
    Ok(())
}

/// Removes a policy directory: its links first (enforcement ends there), then the rest.
pub fn remove(dir: &Path) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort_by_key(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
    });
    for p in entries {
        std::fs::remove_file(&p).with_context(|| format!("cannot unpin `{}`", p.display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("cannot remove `{}`", dir.display()))
}

/// Swaps two directories in one step (`renameat2(RENAME_EXCHANGE)`): the policy's name never
/// points at nothing.
pub fn exchange(a: &Path, b: &Path) -> Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| anyhow!("`{}` contains a NUL byte", p.display()))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e)
            .with_context(|| format!("cannot swap `{}` and `{}`", a.display(), b.display()));
    }
    // bpffs learnt RENAME_EXCHANGE in Linux 5.16. Before, three renames: the name is missing
    // for an instant, enforcement is not (the links are attached whatever their names).
    let parked = a.with_file_name(format!(
        "{}_parked",
        a.file_name().unwrap_or_default().to_string_lossy()
    ));
    let swap = || -> std::io::Result<()> {
        std::fs::rename(b, &parked)?;
        if let Err(e) = std::fs::rename(a, b) {
            // Put the old version back under its name.
            let _ = std::fs::rename(&parked, b);
            return Err(e);
        }
        std::fs::rename(&parked, a)
    };
    swap().with_context(|| format!("cannot swap `{}` and `{}`", a.display(), b.display()))
}

/// Pins a freshly loaded policy into `dir` (created here): maps, programs, links, then `info`.
/// On failure `dir` is removed again, which detaches whatever was pinned.
pub fn pin_loaded(loaded: &mut crate::loader::Loaded, dir: &Path, info: &PinnedInfo) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let pinned = pin_into(loaded, dir, info);
    if pinned.is_err() {
        let _ = remove(dir);
    }
    pinned
}

fn pin_into(loaded: &mut crate::loader::Loaded, dir: &Path, info: &PinnedInfo) -> Result<()> {
    let at = |name: &str| dir.join(name);
    for (name, map) in loaded.ebpf.maps() {
        if name.starts_with("GUARD_") {
            map.pin(at(name))
                .with_context(|| format!("cannot pin map {name}"))?;
        }
    }
    // The other backend's programs were never loaded: nothing to pin.
    for (name, prog) in loaded.ebpf.programs_mut().filter(|(_, p)| p.fd().is_ok()) {
        prog.pin(at(&format!("prog_{name}")))
            .with_context(|| format!("cannot pin program {name}"))?;
    }
    for (name, link) in loaded.links.drain(..) {
        link.pin(at(&name))
            .with_context(|| format!("cannot pin link {name}"))?;
    }
    let agent = Array::<MapData, u64>::create(AGENT_SLOTS, 0)
        .context("cannot create the agent's bookkeeping map")?;
    agent.pin(at(AGENT)).context("cannot pin the agent map")?;
    write_info(info)?
        .pin(at(INFO))
        .context("cannot pin the info map")
}

fn write_info(info: &PinnedInfo) -> Result<Array<MapData, [u8; CHUNK]>> {
    let json = serde_json::to_vec(info).context("cannot encode the policy's info")?;
    let chunks = json.len().div_ceil(CHUNK);
    let mut map = Array::<MapData, [u8; CHUNK]>::create(1 + chunks as u32, 0)
        .context("cannot create the info map")?;
    let mut head = [0u8; CHUNK];
    head[..8].copy_from_slice(&(json.len() as u64).to_le_bytes());
    map.set(0, head, 0).context("cannot write the info map")?;
    for (i, c) in json.chunks(CHUNK).enumerate() {
        let mut v = [0u8; CHUNK];
        v[..c.len()].copy_from_slice(c);
        map.set(1 + i as u32, v, 0)
            .context("cannot write the info map")?;
    }
    Ok(map)
}

/// Reads a policy's `info`; an error for a directory that is not a complete guard policy.
pub fn read_info(dir: &Path) -> Result<PinnedInfo> {
    let data = MapData::from_pin(dir.join(INFO))
        .with_context(|| format!("`{}` holds no guard policy info", dir.display()))?;
    let map = Array::<MapData, [u8; CHUNK]>::try_from(aya::maps::Map::Array(data))
        .context("the info map has another layout")?;
    let head = map.get(&0, 0).context("cannot read the info map")?;
    let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) as usize;
    if len.div_ceil(CHUNK) + 1 > map.len() as usize {
        bail!("the info map of `{}` is corrupt", dir.display());
    }
    let mut json = Vec::with_capacity(len);
    for i in 0..len.div_ceil(CHUNK) {
        json.extend_from_slice(&map.get(&(1 + i as u32), 0)?);
    }
    json.truncate(len);
    serde_json::from_slice(&json)
        .with_context(|| format!("the info of `{}` is corrupt", dir.display()))
}

/// The handles an agent reads a pinned policy through.
pub struct Pinned {
    pub dir: PathBuf,
    pub info: PinnedInfo,
    pub counters: PerCpuArray<MapData, u64>,
    pub rule_counts: PerCpuArray<MapData, u64>,
    pub cgroups: BpfHashMap<MapData, u64, u64>,
    pub agent: Array<MapData, u64>,
    /// The directory itself, locked while this agent reads; its inode tells whether the
    /// policy's name still leads here (an unload or a reload elsewhere moves it away).
    dir_fd: File,
}

fn map_at(dir: &Path, name: &str) -> Result<aya::maps::Map> {
    let data = MapData::from_pin(dir.join(name))
        .with_context(|| format!("cannot open the pinned map `{}`", dir.join(name).display()))?;
    aya::maps::Map::from_map_data(data)
        .with_context(|| format!("the pinned map `{name}` is of an unknown type"))
}

/// The counters of a pinned policy, readable by anyone (`status`), locked by no one.
pub struct Counters {
    pub counters: PerCpuArray<MapData, u64>,
    pub rule_counts: PerCpuArray<MapData, u64>,
    pub agent: Array<MapData, u64>,
}

impl Counters {
    pub fn open(dir: &Path) -> Result<Counters> {
        Ok(Counters {
            counters: map_at(dir, abi::MAP_COUNTERS)?.try_into()?,
            rule_counts: map_at(dir, abi::MAP_RULE_COUNTS)?.try_into()?,
            agent: map_at(dir, AGENT)?.try_into()?,
        })
    }
}

/// Sums entry `i` of a per-CPU counter map (0 if absent).
pub fn sum(map: &PerCpuArray<MapData, u64>, i: u32) -> u64 {
    map.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

pub fn agent_slot(map: &Array<MapData, u64>, s: AgentSlot) -> u64 {
    map.get(&(s as u32), 0).unwrap_or(0)
}

/// Whether an agent holds the policy directory's lock (reads its events).
pub fn has_reader(dir: &Path) -> bool {
    let Ok(f) = File::open(dir) else {
        return false;
    };
    // A shared lock fails only while an agent holds its exclusive one.
    match flock(&f, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => false,
        Err(e) => e.raw_os_error() == Some(libc::EWOULDBLOCK),
    }
}

impl Pinned {
    /// Opens the policy pinned in `dir` for reading, and locks it; refused while another agent
    /// reads it (two readers would split the alerts between them).
    pub fn open(dir: &Path) -> Result<(Pinned, RingBuf<MapData>)> {
        let dir_fd = File::open(dir).with_context(|| format!("cannot open `{}`", dir.display()))?;
        if let Err(e) = flock(&dir_fd, libc::LOCK_EX | libc::LOCK_NB) {
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "another guard-run reads the policy pinned at `{}`; stop it first (SIGTERM \
                     keeps the policy enforced) or load under another --name",
                    dir.display()
                );
            }
            return Err(e).context("cannot lock the policy's directory");
        }
        let info = read_info(dir)?;
        let c = Counters::open(dir)?;
        let ring: RingBuf<MapData> = map_at(dir, abi::MAP_EVENTS)?.try_into()?;
        Ok((
            Pinned {
                dir: dir.to_path_buf(),
                info,
                counters: c.counters,
                rule_counts: c.rule_counts,
                cgroups: map_at(dir, abi::MAP_CGROUPS)?.try_into()?,
                agent: c.agent,
                dir_fd,
            },
            ring,
        ))
    }

    /// Whether the policy's name still leads to the directory this agent reads.
    pub fn still_pinned(&self) -> bool {
        let (Ok(ours), Ok(now)) = (self.dir_fd.metadata(), std::fs::metadata(&self.dir)) else {
            return false;
        };
        ours.ino() == now.ino() && ours.dev() == now.dev()
    }

    pub fn counter(&self, c: abi::Counter) -> u64 {
        sum(&self.counters, c as u32)
    }

    pub fn set_agent(&mut self, s: AgentSlot, v: u64) {
        // Bookkeeping only: a failed write costs an imprecise "lost while unread" count.
        let _ = self.agent.set(s as u32, v, 0);
    }

    pub fn agent_slot(&self, s: AgentSlot) -> u64 {
        agent_slot(&self.agent, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_root() {
        for ok in ["secrets", "guard-five-123", "a_b-c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".hidden", "_staging", "a.b", "..", "a/b", "../x", "sp ace", "nul\0",
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("--name"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_file_stem_becomes_a_name() {
        assert_eq!(name_from_stem("secrets.v2"), "secrets_v2");
        assert_eq!(name_from_stem("guard-five-42"), "guard-five-42");
        assert!(check_name(&name_from_stem("policy.2024")).is_ok());
    }

    #[test]
    fn the_hash_is_sha3_256() {
        // The empty input's SHA3-256, as `sha3sum -a 256` prints it.
        assert_eq!(
            sha3_hex(b""),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }

    #[test]
    fn a_root_off_bpffs_is_refused() {
        let dir = std::env::temp_dir().join(format!("guard-pin-root-{}", std::process::id()));
        let e = Root::lock(&dir)
            .err()
            .expect("tmp is not bpffs")
            .to_string();
        assert!(e.contains("not on a BPF file system"), "{e}");
        let _ = std::fs::remove_dir(&dir);
    }
}
