//! Loading a guard object into the kernel, whole or not at all.
//!
//! Order matters: every program is verified before anything is attached (a verifier rejection
//! leaves nothing behind); the tracking programs are attached before `/proc` is scanned, so no
//! process can start between the scan and tracking unseen; the enforcement programs are
//! attached last, once every running process has its identity bits. The identity store (task
//! storage or hash map, [`crate::store`]) is chosen first: the map's type is fixed when aya
//! creates it, and every program that touches the store is written for one of them.

use std::borrow::BorrowMut;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::links::FdLink;
use aya::programs::{BtfTracePoint, Lsm, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use guard_ebpf::abi::IdentityStore;
use guard_ebpf::abi::{self, Attach, Role, Scope};

use crate::backend::{self, Backend, Choice};
use crate::containers::StateDirs;
use crate::object::GuardObject;
use crate::procscan;
use crate::scope::NodeContext;
use crate::store::{self, StoreChoice};

pub struct Options {
    /// Accept enforcing `deny` rules by killing, on a backend that cannot deny.
    pub deny_as_kill: bool,
    pub backend: Choice,
    /// `--identity-store`.
    pub store: StoreChoice,
    /// Where the container runtimes keep their state (container and pod scopes, alerts).
    pub state_dirs: StateDirs,
    /// The node's user database, for `user("name")` subjects.
    pub passwd: PathBuf,
    /// The host's cgroup v2 hierarchy, where the mount table does not lead to it (in a
    /// container, `/sys/fs/cgroup` is the container's own cgroup namespace).
    pub cgroup_root: Option<PathBuf>,
    /// Audit mode: judge and report, carry nothing out (see [`crate::valve`]).
    pub audit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deny_as_kill: false,
            backend: Choice::Auto,
            store: StoreChoice::Auto,
            state_dirs: StateDirs::default(),
            passwd: "/etc/passwd".into(),
            cgroup_root: None,
            audit: false,
        }
    }
}

/// A policy loaded and enforced. Dropping it detaches every program, unless its links were
/// pinned.
pub struct Loaded {
    pub ebpf: Ebpf,
    /// Every attachment, named after its program (and tracepoint), to be pinned.
    pub links: Vec<(String, FdLink)>,
    pub backend: Backend,
    pub store: IdentityStore,
    pub seeded: usize,
    /// Containers and scopes, kept current by the agent.
    pub node: NodeContext,
    /// `user("name")` subjects as resolved on this node.
    pub users: Vec<(String, u32)>,
    /// The object as loaded (user names resolved): its hash tells a reload from a restart.
    pub bytes: Vec<u8>,
}

/// What the kernel must offer before anything is loaded.
pub fn preflight() -> Result<()> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); guard needs a \
             kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    Ok(())
}

pub fn load(obj: &GuardObject, opts: &Options) -> Result<Loaded> {
    preflight()?;
    if opts.backend == Choice::Tracepoint && !opts.audit {
        // Nothing to probe: refuse what this backend cannot do before the slow part.
        backend::check_enforceable(&obj.meta.rules, Backend::Tracepoint, opts.deny_as_kill)?;
    }
    crate::fs::ensure_mounts()?;
    let btf = Btf::from_sys_fs().context("cannot read the kernel's BTF")?;
    let (bytes, users) = resolve_users(obj, &opts.passwd)?;
    // Verify everything before attaching anything: the tracking programs (with the maps, the
    // probe of the identity store), then the chosen backend's enforcement programs. A verifier
    // rejection leaves nothing behind.
    let (mut ebpf, store) = choose_store(&bytes, obj, opts, &btf)?;
    let backend = choose_backend(&mut ebpf, obj, opts, &btf, store)?;
    // In audit mode nothing is carried out, so a deny the backend could not carry out is fine.
    if !opts.audit {
        backend::check_enforceable(&obj.meta.rules, backend, opts.deny_as_kill)?;
    }
    // Before any program that can act is attached (the tracking program judges exec rules).
    crate::valve::write(&mut ebpf, opts.audit)?;
    let enforcement: Vec<&abi::ProgramMeta> = obj
        .meta
        .programs
        .iter()
        .filter(|p| p.backend == Some(backend) && store::selects(p, store))
        .collect();
    if enforcement.is_empty() {
        bail!(
            "the object has no programs for the {} backend; recompile it with this guard-run's guardc",
            backend.as_str()
        );
    }
    if backend == Backend::Tracepoint {
        for p in &enforcement {
            verify(&mut ebpf, p, &btf, &obj.meta)?;
        }
    }

    let mut links = Vec::new();
    for p in obj
        .meta
        .programs
        .iter()
        .filter(|p| p.role == Role::Tracking && store::selects(p, store))
    {
        links.extend(attach(&mut ebpf, p)?);
    }
    let seeded = seed_tasks(&mut ebpf, obj)?;
    let root = opts
        .cgroup_root
        .clone()
        .or_else(crate::cgroups::cgroup2_root);
    if root.is_none() && !obj.meta.scopes.is_empty() {
        bail!(
            "the policy's rules are scoped (cgroup, container, k8s_namespace or pod_label), and \
             this node has no cgroup v2 hierarchy mounted"
        );
    }
    let mut node = NodeContext::new(root, obj.meta.scopes.clone(), opts.state_dirs.clone());
    node.refresh();
    report_scopes(&node, root_for_report(opts));
    sync_scopes(&mut ebpf, &node.view.bits)?;
    for p in enforcement {
        links.extend(attach(&mut ebpf, p)?);
    }
    Ok(Loaded {
        ebpf,
        links,
        backend,
        store,
        seeded,
        node,
        users,
        bytes,
    })
}

/// The object's maps created and its tracking programs verified for one identity store.
fn open_for(bytes: &[u8], store: IdentityStore, obj: &GuardObject, btf: &Btf) -> Result<Ebpf> {
    let bytes = store::object_for(bytes, store)?;
    let rule_counts = (obj.meta.rules.len() as u32).saturating_mul(abi::RULE_COUNTER_KINDS);
    let mut loader = EbpfLoader::new();
    loader
        .btf(Some(btf))
        .map_max_entries(abi::MAP_RULE_COUNTS, rule_counts.max(1))
        // aya wraps no task storage map (`Map::Unsupported`); guard-run writes it itself.
        .allow_unsupported_maps();
    if store == IdentityStore::Hash {
        loader.map_max_entries(abi::MAP_TASKS, abi::TASKS_MAX_ENTRIES);
    }
    let mut ebpf = loader.load(&bytes).map_err(|e| {
        let what = match store {
            IdentityStore::Task => {
                " (a kernel without BPF task storage, before 5.11, refuses GUARD_TASKS)"
            }
            IdentityStore::Hash => "",
        };
        anyhow!("the kernel refused the object's maps or relocations{what}: {e}")
    })?;
    for p in obj
        .meta
        .programs
        .iter()
        .filter(|p| p.backend.is_none() && store::selects(p, store))
    {
        verify(&mut ebpf, p, btf, &obj.meta)?;
    }
    Ok(ebpf)
}

/// Picks the identity store: task storage where the kernel creates the map and verifies the
/// tracking programs that use it (that is the probe), else the hash map, said loudly.
fn choose_store(
    bytes: &[u8],
    obj: &GuardObject,
    opts: &Options,
    btf: &Btf,
) -> Result<(Ebpf, IdentityStore)> {
    match opts.store {
        StoreChoice::Hash => Ok((
            open_for(bytes, IdentityStore::Hash, obj, btf)?,
            IdentityStore::Hash,
        )),
        StoreChoice::Task => open_for(bytes, IdentityStore::Task, obj, btf)
            .map(|e| (e, IdentityStore::Task))
            .map_err(|e| {
                e.context(
                    "--identity-store task: this kernel cannot keep identities in BPF task storage",
                )
            }),
        StoreChoice::Auto => match open_for(bytes, IdentityStore::Task, obj, btf) {
            Ok(ebpf) => Ok((ebpf, IdentityStore::Task)),
            Err(e) => {
                crate::report!(
                    "guard-run: WARNING: no BPF task storage for identities ({e:#}); falling \
                     back to a hash map keyed by thread id, which holds at most {} tasks",
                    abi::TASKS_MAX_ENTRIES
                );
                Ok((
                    open_for(bytes, IdentityStore::Hash, obj, btf)?,
                    IdentityStore::Hash,
                ))
            }
        },
    }
}

/// Picks the backend: LSM where the kernel runs BPF LSM and its verifier accepts the LSM
/// programs (they are verified here, as the probe), else the tracepoint backend. A kernel that
/// lists BPF LSM but refuses its programs is reported, not passed over in silence.
fn choose_backend(
    ebpf: &mut Ebpf,
    obj: &GuardObject,
    opts: &Options,
    btf: &Btf,
    store: IdentityStore,
) -> Result<Backend> {
    if opts.backend == Choice::Tracepoint {
        return Ok(Backend::Tracepoint);
    }
    let listed = backend::bpf_lsm_listed();
    if !listed {
        if opts.backend == Choice::Lsm {
            bail!(
                "--backend lsm: this kernel does not run the BPF LSM (`bpf` is not in \
                 /sys/kernel/security/lsm); boot it with `lsm=...,bpf`"
            );
        }
        return Ok(Backend::Tracepoint);
    }
    let lsm: Vec<&abi::ProgramMeta> = obj
        .meta
        .programs
        .iter()
        .filter(|p| p.backend == Some(Backend::Lsm) && store::selects(p, store))
        .collect();
    let tried: Result<()> = lsm.iter().try_for_each(|p| verify(ebpf, p, btf, &obj.meta));
    match tried {
        Ok(()) if !lsm.is_empty() => Ok(Backend::Lsm),
        Ok(()) => Ok(Backend::Tracepoint),
        Err(e) if opts.backend == Choice::Lsm => Err(e.context("--backend lsm")),
        Err(e) => {
            crate::report!(
                "guard-run: WARNING: this kernel lists the BPF LSM, but {e:#}; falling back \
                 to the tracepoint backend, which kills after the open and cannot deny"
            );
            Ok(Backend::Tracepoint)
        }
    }
}

/// Loads one program into the kernel (the verifier runs here), without attaching it.
fn verify(ebpf: &mut Ebpf, p: &abi::ProgramMeta, btf: &Btf, meta: &abi::Metadata) -> Result<()> {
    let prog = ebpf.program_mut(&p.name).ok_or_else(|| {
        anyhow!(
            "the object lacks program `{}` named in its metadata",
            p.name
        )
    })?;
    let result = match &p.attach {
        Attach::BtfTracepoint { name } => {
            let tp: &mut BtfTracePoint = prog.try_into()?;
            tp.load(name, btf)
        }
        Attach::Tracepoint { .. } => {
            let tp: &mut TracePoint = prog.try_into()?;
            tp.load()
        }
        Attach::Lsm { hook } => {
            let lsm: &mut Lsm = prog.try_into()?;
            lsm.load(hook, btf)
        }
    };
    result.map_err(|e| verifier_error(&p.name, e, &judged_rules(&p.name, meta)))
}

/// The policy's rules a program judges, with their locations, for a verifier rejection: the
/// programs are templates, so what the operator can change is the rules that sized them.
fn judged_rules(program: &str, meta: &abi::Metadata) -> String {
    let is_exec = |r: &&abi::RuleMeta| r.operation == "exec";
    let (what, rules): (&str, Vec<&abi::RuleMeta>) = if program.contains("exec") {
        if meta.rules.iter().any(|r| is_exec(&r)) {
            (
                "judges the exec rules",
                meta.rules.iter().filter(is_exec).collect(),
            )
        } else {
            (
                "tracks the identities used by the rules",
                meta.rules.iter().collect(),
            )
        }
    } else if program.contains("open") {
        (
            "judges the open rules",
            meta.rules.iter().filter(|r| !is_exec(r)).collect(),
        )
    } else {
        return String::new();
    };
    if rules.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 5;
    let mut text = format!("\nIt {what} of `{}`:", meta.source);
    for r in rules.iter().take(SHOWN) {
        text.push_str(&format!(
            "\n  rule {} `{}` at {}:{}:{}",
            r.id, r.name, meta.source, r.line, r.column
        ));
    }
    if rules.len() > SHOWN {
        text.push_str(&format!("\n  ... and {} more", rules.len() - SHOWN));
    }
    text
}

/// Attaches one program; returns its links, each with the name its pin will have.
fn attach(ebpf: &mut Ebpf, p: &abi::ProgramMeta) -> Result<Vec<(String, FdLink)>> {
    let prog = ebpf
        .program_mut(&p.name)
        .ok_or_else(|| anyhow!("program `{}` vanished", p.name))?;
    let mut links = Vec::new();
    match &p.attach {
        Attach::BtfTracepoint { name } => {
            let tp: &mut BtfTracePoint = prog.try_into()?;
            let id = tp
                .attach()
                .with_context(|| format!("cannot attach `{}` to tp_btf/{name}", p.name))?;
            links.push((format!("link_{}", p.name), tp.take_link(id)?.into()));
        }
        Attach::Tracepoint { points } => {
            let tp: &mut TracePoint = prog.try_into()?;
            for (category, name) in points {
                let id = tp
                    .attach(category, name)
                    .with_context(|| format!("cannot attach `{}` to {category}/{name}", p.name))?;
                let link = FdLink::try_from(tp.take_link(id)?).map_err(|e| {
                    anyhow!(
                        "`{}` on {category}/{name}: this kernel attached the tracepoint without \
                         a BPF link ({e}), which cannot be pinned; guard needs Linux 5.15 or later",
                        p.name
                    )
                })?;
                links.push((format!("link_{}_{name}", p.name), link));
            }
        }
        Attach::Lsm { hook } => {
            let lsm: &mut Lsm = prog.try_into()?;
            let id = lsm
                .attach()
                .with_context(|| format!("cannot attach `{}` to lsm/{hook}", p.name))?;
            links.push((format!("link_{}", p.name), lsm.take_link(id)?.into()));
        }
    }
    Ok(links)
}

/// Gives every running process its identity bits ([`store::seed_one`]). Entries the tracking
/// programs wrote since they were attached are newer than the scan and are kept. The scan runs
/// twice: a process forked during the first scan by a parent that had no entry yet is caught
/// by the second.
fn seed_tasks(ebpf: &mut Ebpf, obj: &GuardObject) -> Result<usize> {
    let map = ebpf
        .map_mut(abi::MAP_TASKS)
        .ok_or_else(|| anyhow!("the object lacks map {}", abi::MAP_TASKS))?;
    let mut seeded = 0;
    for _ in 0..2 {
        let scan = procscan::scan(Path::new("/proc"), &obj.identities)
            .map_err(|e| anyhow!("cannot scan /proc: {e}"))?;
        for (tid, info) in scan {
            if store::seed_one(map, tid, &info)? {
                seeded += 1;
            }
        }
    }
    Ok(seeded)
}

/// Makes the kernel's cgroup map hold exactly `bits` (see [`sync_table`]).
pub fn sync_scopes(ebpf: &mut Ebpf, bits: &HashMap<u64, u64>) -> Result<usize> {
    let map = ebpf
        .map_mut(abi::MAP_CGROUPS)
        .ok_or_else(|| anyhow!("the object lacks map {}", abi::MAP_CGROUPS))?;
    let mut table: BpfHashMap<&mut MapData, u64, u64> = BpfHashMap::try_from(map)?;
    sync_table(&mut table, bits)
}

/// Makes a cgroup map hold exactly `bits`: new and changed cgroups are written, cgroups no
/// longer in any scope (or gone) are removed.
pub fn sync_table<T: BorrowMut<MapData>>(
    table: &mut BpfHashMap<T, u64, u64>,
    bits: &HashMap<u64, u64>,
) -> Result<usize> {
    let stale: Vec<u64> = table
        .keys()
        .flatten()
        .filter(|k| !bits.contains_key(k))
        .collect();
    for k in &stale {
        // Already gone is fine.
        let _ = table.remove(k);
    }
    let mut changed = stale.len();
    for (&id, &b) in bits {
        if table.get(&id, 0).ok() != Some(b) {
            table
                .insert(id, b, 0)
                .context("cannot record a cgroup of the policy's scope")?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Says loudly which scopes hold no process yet: a typo in a namespace or a pod that is not
/// scheduled here looks the same from the node, and the operator must hear about both.
pub fn root_for_report(opts: &Options) -> Option<PathBuf> {
    opts.cgroup_root
        .clone()
        .or_else(crate::cgroups::cgroup2_root)
}

pub fn report_scopes(node: &NodeContext, root: Option<PathBuf>) {
    let scopes = node.scopes();
    if scopes.is_empty() {
        return;
    }
    if let Some(root) = root {
        for p in crate::scope::missing_cgroups(&root, scopes) {
            crate::report!(
                "guard-run: WARNING: cgroup `{p}` does not exist (yet) under {}: no process is \
                 in it until it appears",
                root.display()
            );
        }
    }
    let (unmatched, unlabelled) =
        crate::scope::unmatched(scopes, &node.view, node.containers.all());
    for i in unmatched {
        crate::report!(
            "guard-run: WARNING: no container on this node is in scope {} yet; it is checked \
             again every second",
            describe_scope(&scopes[i])
        );
    }
    if unlabelled > 0 {
        crate::report!(
            "guard-run: WARNING: {unlabelled} containers have no pod labels in their runtime's \
             records (containerd keeps none); pod_label(...) never holds for them"
        );
    }
}

fn describe_scope(s: &Scope) -> String {
    match s {
        Scope::Cgroup { path } => format!("cgroup(\"{path}\")"),
        Scope::Container { names } => format!("container({})", names.join(", ")),
        Scope::K8sNamespace { names } => format!("k8s_namespace({})", names.join(", ")),
        Scope::PodLabel { labels } => {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("pod_label({})", l.join(", "))
        }
    }
}

/// The object's bytes with every `user("name")` entry of the uid table filled in from the
/// node's passwd file. A name the node does not know refuses the load: the rule would
/// otherwise silently hold for no one, which for an `allow` kills the user's processes and
/// for a `kill` lets them through.
/// The object's bytes to load, and each `user("name")` with the uid it resolved to.
pub type WithUsers = (Vec<u8>, Vec<(String, u32)>);

pub fn resolve_users(obj: &GuardObject, passwd: &Path) -> Result<WithUsers> {
    let mut bytes = obj.bytes.clone();
    if obj.meta.users.is_empty() {
        return Ok((bytes, Vec::new()));
    }
    let text = std::fs::read(passwd).with_context(|| {
        format!(
            "the policy names users, and the user database `{}` cannot be read",
            passwd.display()
        )
    })?;
    let uids = crate::users::uids_by_name(&text);
    let range = guard_ebpf::elf::section_file_range(&bytes, abi::RODATA_UIDS)
        .map_err(|e| anyhow!("the object's uid table is unusable: {e}"))?;
    let mut resolved = Vec::new();
    for u in &obj.meta.users {
        let Some(&uid) = uids.get(&u.name) else {
            bail!(
                "the policy names user `{}`, which `{}` does not list; refusing to load a rule \
                 that would hold for no one. Create the user, or write its uid with uid(N)",
                u.name,
                passwd.display()
            );
        };
        // The table is a u32 count followed by the entries.
        let at = range.start + 4 + 4 * u.slot as usize;
        if at + 4 > range.end {
            bail!(
                "the object's uid table has no entry {} for user `{}`",
                u.slot,
                u.name
            );
        }
        bytes[at..at + 4].copy_from_slice(&uid.to_le_bytes());
        resolved.push((u.name.clone(), uid));
    }
    Ok((bytes, resolved))
}

fn verifier_error(name: &str, e: ProgramError, rules: &str) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            if tail.iter().all(|l| l.trim().is_empty()) {
                // No verifier output: the kernel refused before verifying (EPERM for a program
                // type it does not allow, say).
                return anyhow!("the kernel refused to load program `{name}`: {io_error}");
            }
            // The verifier's budget (a million instructions, 8,192 jump states) is what a
            // policy can exceed; the rules are what the operator can change.
            let hint = if log.contains("is too large") || log.contains("too complex") {
                "\nThe program is too large for this kernel's verifier: fewer rules sharing a \
                 path, or shorter patterns, make it smaller."
            } else {
                ""
            };
            anyhow!(
                "the kernel's verifier rejected program `{name}` ({io_error}); nothing was \
                 attached. Last lines of the verifier log:\n  {}{rules}{hint}",
                tail.join("\n  ")
            )
        }
        other => anyhow!("cannot load program `{name}`: {other}"),
    }
}
