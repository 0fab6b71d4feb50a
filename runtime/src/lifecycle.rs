//! What `guard-run load` does with a policy's name: load it fresh, adopt the version already
//! pinned under that name (same object: nothing is loaded or attached again, enforcement never
//! stopped), or replace it (another object: the new version is loaded and attached in full
//! before the old one's links are removed, so at every instant at least one version enforces).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use guard_ebpf::abi;

use crate::backend::Choice;
use crate::loader::{self, Options};
use crate::object::GuardObject;
use crate::pin::{self, Pinned, PinnedInfo};
use crate::scope::NodeContext;

/// Where a policy is pinned and under which name.
#[derive(Clone, Debug)]
pub struct PinTarget {
    /// `None`: the object's file stem.
    pub name: Option<String>,
    pub root: PathBuf,
}

impl Default for PinTarget {
    fn default() -> Self {
        PinTarget {
            name: None,
            root: PathBuf::from(pin::DEFAULT_ROOT),
        }
    }
}

/// How the policy came to be enforced.
pub enum How {
    /// Loaded and attached; `seeded` running tasks given their identities.
    Fresh { seeded: usize },
    /// The same object was already pinned: taken over as it was.
    Adopted,
    /// Another object was pinned under the name: replaced by this one. `old`: what it was
    /// (`None`: a directory whose info could not be read, replaced all the same). `drained`:
    /// events the old version's ring buffer still held (no agent read it), to alert with its
    /// rules.
    Replaced {
        seeded: usize,
        old: Option<Box<PinnedInfo>>,
        drained: Vec<Vec<u8>>,
    },
}

pub struct Installed {
    pub pinned: Pinned,
    pub ring: RingBuf<MapData>,
    pub node: NodeContext,
    pub how: How,
}

/// The object's file stem, made a usable name (see [`pin::name_from_stem`]).
pub fn default_name(object: &Path) -> String {
    object
        .file_stem()
        .map(|s| pin::name_from_stem(&s.to_string_lossy()))
        .unwrap_or_default()
}

/// Loads, adopts or replaces the policy of `obj` under its name; returns it open for reading.
pub fn install(
    path: &Path,
    obj: &GuardObject,
    target: &PinTarget,
    opts: &Options,
) -> Result<Installed> {
    let name = target.name.clone().unwrap_or_else(|| default_name(path));
    pin::check_name(&name)?;
    loader::preflight()?;
    if opts.backend == Choice::Tracepoint && !opts.audit {
        // Refused before the pin root is even created (the loader checks again).
        crate::backend::check_enforceable(
            &obj.meta.rules,
            abi::Backend::Tracepoint,
            opts.deny_as_kill,
        )?;
    }
    crate::fs::ensure_mounts()?;
    let root = pin::Root::lock(&target.root)?;
    for p in root.clean_leftovers(&name) {
        crate::report!(
            "guard-run: removed `{}`, left behind by a load that did not finish",
            p.display()
        );
    }
    let dir = root.policy(&name);
    let sha = pin::sha3_hex(&obj.bytes);
    let existing = dir.exists().then(|| pin::read_info(&dir));
    if let Some(Ok(info)) = &existing
        && adoptable(info, &sha, obj, opts)
    {
        let (pinned, ring) = Pinned::open(&dir)?;
        let node = node_context(opts, pinned.info.meta.scopes.clone());
        return Ok(Installed {
            pinned,
            ring,
            node,
            how: How::Adopted,
        });
    }

    let replacing = existing.is_some();
    let keeps = |e: anyhow::Error| {
        if replacing {
            e.context(format!(
                "the new object was not loaded; the policy pinned at `{}` keeps enforcing its \
                 previous version",
                dir.display()
            ))
        } else {
            e
        }
    };
    let mut loaded = loader::load(obj, opts).map_err(keeps)?;
    let info = PinnedInfo {
        name: name.clone(),
        object_sha3: sha,
        object_path: path.display().to_string(),
        backend: loaded.backend,
        store: loaded.store,
        deny_as_kill: opts.deny_as_kill,
        audit: opts.audit,
        loaded_at: pin::now_secs(),
        loaded_by: format!(
            "guard-run {} (pid {})",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ),
        users: loaded.users.clone(),
        meta: obj.meta.clone(),
    };
    let staging = root.staging(&name);
    pin::pin_loaded(&mut loaded, &staging, &info).map_err(keeps)?;
    let how = match existing {
        None => {
            std::fs::rename(&staging, &dir)
                .with_context(|| format!("cannot move the new policy to `{}`", dir.display()))
                .inspect_err(|_| {
                    let _ = pin::remove(&staging);
                })?;
            How::Fresh {
                seeded: loaded.seeded,
            }
        }
        Some(old) => {
            // An old version nobody reads still holds the events raised since its agent
            // stopped: take them before its ring buffer goes.
            let drained = if pin::has_reader(&dir) {
                Vec::new()
            } else {
                drain(&dir)
            };
            pin::exchange(&staging, &dir)
                .inspect_err(|_| {
                    let _ = pin::remove(&staging);
                })
                .map_err(keeps)?;
            // Both versions are attached now; detaching the old one leaves the new one.
            pin::remove(&staging).with_context(|| {
                format!(
                    "the new version enforces, but the old one could not be removed from `{}` \
                     (both enforce until it is)",
                    staging.display()
                )
            })?;
            How::Replaced {
                seeded: loaded.seeded,
                old: old.ok().map(Box::new),
                drained,
            }
        }
    };
    let node = std::mem::replace(
        &mut loaded.node,
        NodeContext::new(None, Vec::new(), Default::default()),
    );
    // The pins hold the programs and links now; this process's own handles go.
    drop(loaded);
    let (pinned, ring) = Pinned::open(&dir)?;
    Ok(Installed {
        pinned,
        ring,
        node,
        how,
    })
}

/// The same object, resolving the same users, on a backend the operator accepts: adopt it.
fn adoptable(info: &PinnedInfo, sha: &str, obj: &GuardObject, opts: &Options) -> bool {
    let backend_ok = match opts.backend {
        Choice::Auto => true,
        Choice::Lsm => info.backend == abi::Backend::Lsm,
        Choice::Tracepoint => info.backend == abi::Backend::Tracepoint,
    };
    let store_ok = match opts.store {
        crate::store::StoreChoice::Auto => true,
        crate::store::StoreChoice::Task => info.store == abi::IdentityStore::Task,
        crate::store::StoreChoice::Hash => info.store == abi::IdentityStore::Hash,
    };
    let users_same = loader::resolve_users(obj, &opts.passwd)
        .map(|(_, users)| users == info.users)
        .unwrap_or(false);
    info.object_sha3 == sha && backend_ok && store_ok && users_same && info.audit == opts.audit
}

/// The events waiting in the ring buffer of the policy pinned at `dir`.
fn drain(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(data) = MapData::from_pin(dir.join(abi::MAP_EVENTS)) else {
        return Vec::new();
    };
    let Ok(mut ring) = RingBuf::try_from(aya::maps::Map::RingBuf(data)) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    while let Some(item) = ring.next() {
        v.push(item.to_vec());
    }
    v
}

fn node_context(opts: &Options, scopes: Vec<abi::Scope>) -> NodeContext {
    let root = loader::root_for_report(opts);
    let mut node = NodeContext::new(root.clone(), scopes, opts.state_dirs.clone());
    node.refresh();
    loader::report_scopes(&node, root);
    node
}
