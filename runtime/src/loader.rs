//! Loading a guard object into the kernel, whole or not at all.
//!
//! Order matters: every program is verified before anything is attached (a verifier rejection
//! leaves nothing behind); the tracking programs are attached before `/proc` is scanned, so no
//! process can start between the scan and tracking unseen; the enforcement programs are
//! attached last, once every running process has its identity bits.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use guard_ebpf::abi::{self, Action, Attach, Role, TaskInfo};

use crate::object::GuardObject;
use crate::procscan;

/// `TaskInfo` as an aya map value.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct PodTaskInfo(pub TaskInfo);
// SAFETY: TaskInfo is repr(C), made of u64s only: no padding, every bit pattern valid.
unsafe impl aya::Pod for PodTaskInfo {}

/// Which enforcement mechanism the loaded programs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Syscall and scheduler tracepoints plus `bpf_send_signal`: can kill, cannot deny.
    Tracepoint,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Tracepoint => "tracepoint (kill via bpf_send_signal; cannot deny)",
        }
    }
}

pub struct Options {
    /// Accept enforcing `deny` rules by killing, on a backend that cannot deny.
    pub deny_as_kill: bool,
}

/// A policy loaded and enforced. Dropping it detaches every program.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub backend: Backend,
    pub seeded: usize,
}

/// What the kernel and the object need before anything is loaded.
pub fn preflight(obj: &GuardObject, opts: &Options) -> Result<Backend> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); guard needs a \
             kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    let backend = Backend::Tracepoint;
    let deny: Vec<_> = obj
        .meta
        .rules
        .iter()
        .filter(|r| r.action == Action::Deny)
        .collect();
    if !deny.is_empty() && !opts.deny_as_kill {
        let names: Vec<String> = deny
            .iter()
            .map(|r| format!("`{}` (line {})", r.name, r.line))
            .collect();
        bail!(
            "the policy has deny rules ({}) and this kernel offers only the {} backend, which \
             cannot make an open fail; refusing to load rather than enforce less than the policy \
             says. Boot with `lsm=...,bpf` for deny, or pass --deny-as-kill to enforce these \
             rules by killing",
            names.join(", "),
            backend.as_str()
        );
    }
    Ok(backend)
}

pub fn load(obj: &GuardObject, opts: &Options) -> Result<Loaded> {
    let backend = preflight(obj, opts)?;
    crate::fs::ensure_mounts()?;
    let btf = Btf::from_sys_fs().context("cannot read the kernel's BTF")?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(&obj.bytes)
        .map_err(|e| anyhow!("the kernel refused the object's maps or relocations: {e}"))?;

    // Verify everything first.
    for p in &obj.meta.programs {
        let prog = ebpf.program_mut(&p.name).ok_or_else(|| {
            anyhow!(
                "the object lacks program `{}` named in its metadata",
                p.name
            )
        })?;
        let result = match &p.attach {
            Attach::BtfTracepoint { name } => {
                let tp: &mut BtfTracePoint = prog.try_into()?;
                tp.load(name, &btf)
            }
            Attach::Tracepoint { .. } => {
                let tp: &mut TracePoint = prog.try_into()?;
                tp.load()
            }
        };
        result.map_err(|e| verifier_error(&p.name, e))?;
    }

    for p in obj
        .meta
        .programs
        .iter()
        .filter(|p| p.role == Role::Tracking)
    {
        attach(&mut ebpf, p)?;
    }
    let seeded = seed_tasks(&mut ebpf, obj)?;
    if !obj.meta.cgroups.is_empty() {
        let root = crate::cgroups::cgroup2_root().ok_or_else(|| {
            anyhow!("the policy names cgroups, and this node has no cgroup v2 hierarchy mounted")
        })?;
        for p in crate::cgroups::missing(&root, &obj.meta.cgroups) {
            eprintln!(
                "guard-run: WARNING: cgroup `{p}` does not exist (yet) under {}: no process is \
                 in it until it appears",
                root.display()
            );
        }
        sync_cgroups(&mut ebpf, &root, &obj.meta.cgroups)?;
    }
    for p in obj
        .meta
        .programs
        .iter()
        .filter(|p| p.role == Role::Enforcement)
    {
        attach(&mut ebpf, p)?;
    }
    Ok(Loaded {
        ebpf,
        backend,
        seeded,
    })
}

fn attach(ebpf: &mut Ebpf, p: &abi::ProgramMeta) -> Result<()> {
    let prog = ebpf
        .program_mut(&p.name)
        .ok_or_else(|| anyhow!("program `{}` vanished", p.name))?;
    match &p.attach {
        Attach::BtfTracepoint { name } => {
            let tp: &mut BtfTracePoint = prog.try_into()?;
            tp.attach()
                .with_context(|| format!("cannot attach `{}` to tp_btf/{name}", p.name))?;
        }
        Attach::Tracepoint { points } => {
            let tp: &mut TracePoint = prog.try_into()?;
            for (category, name) in points {
                tp.attach(category, name)
                    .with_context(|| format!("cannot attach `{}` to {category}/{name}", p.name))?;
            }
        }
    }
    Ok(())
}

/// Gives every running process its identity bits. Entries the tracking programs wrote since
/// they were attached are newer than the scan and are kept (BPF_NOEXIST). The scan runs twice:
/// a process forked during the first scan by a parent that had no entry yet is caught by the
/// second.
fn seed_tasks(ebpf: &mut Ebpf, obj: &GuardObject) -> Result<usize> {
    const BPF_NOEXIST: u64 = 1;
    let map = ebpf
        .map_mut(abi::MAP_TASKS)
        .ok_or_else(|| anyhow!("the object lacks map {}", abi::MAP_TASKS))?;
    let mut tasks: BpfHashMap<&mut MapData, u32, PodTaskInfo> = BpfHashMap::try_from(map)?;
    let mut seeded = 0;
    for _ in 0..2 {
        let scan = procscan::scan(Path::new("/proc"), &obj.identities)
            .map_err(|e| anyhow!("cannot scan /proc: {e}"))?;
        for (tid, info) in scan {
            match tasks.insert(tid, PodTaskInfo(info), BPF_NOEXIST) {
                Ok(()) => seeded += 1,
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e).context("cannot record a running process's identity"),
            }
        }
    }
    Ok(seeded)
}

/// Adds the ids of the cgroups at or below the policy's cgroup paths to the kernel's map.
pub fn sync_cgroups(ebpf: &mut Ebpf, root: &Path, paths: &[String]) -> Result<usize> {
    let map = ebpf
        .map_mut(abi::MAP_CGROUPS)
        .ok_or_else(|| anyhow!("the object lacks map {}", abi::MAP_CGROUPS))?;
    let mut table: BpfHashMap<&mut MapData, u64, u64> = BpfHashMap::try_from(map)?;
    let mut added = 0;
    for (id, bits) in crate::cgroups::scan(root, paths) {
        if table.get(&id, 0).ok() != Some(bits) {
            table
                .insert(id, bits, 0)
                .context("cannot record a cgroup of the policy's scope")?;
            added += 1;
        }
    }
    Ok(added)
}

fn verifier_error(name: &str, e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow!(
                "the kernel's verifier rejected program `{name}` ({io_error}); nothing was \
                 attached. Last lines of the verifier log:\n  {}",
                tail.join("\n  ")
            )
        }
        other => anyhow!("cannot load program `{name}`: {other}"),
    }
}

impl Loaded {
    pub fn take_events(&mut self) -> Result<RingBuf<aya::maps::MapData>> {
        let map = self
            .ebpf
            .take_map(abi::MAP_EVENTS)
            .ok_or_else(|| anyhow!("the object lacks map {}", abi::MAP_EVENTS))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Sums a per-CPU counter.
    pub fn counter(&self, c: abi::Counter) -> u64 {
        let Some(map) = self.ebpf.map(abi::MAP_COUNTERS) else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        arr.get(&(c as u32), 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}
