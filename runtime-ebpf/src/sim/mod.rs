//! A user-space BPF machine that runs a compiled guard object's own programs and map tables,
//! with the kernel mocked: the foundation of `guardc test` (issue 8).
//!
//! * [`mem`]: bounds-checked memory regions (stack, map values, context, kernel objects).
//! * [`vm`]: the instruction interpreter, with an instruction budget.
//! * [`helpers`]: the kernel helpers our programs call, answered from the mocked [`world`].
//! * [`object`]: loads programs, maps and `.rodata*` tables from the object's ELF bytes, and
//!   resolves its map and CO-RE relocations (the latter against [`layout`], the simulator's own
//!   kernel struct layout, which differs from the object's local one on purpose so a missed
//!   relocation shows up as a wrong read).
//! * [`world`]: tasks, files, dentries and mounts, built from a small Rust API.
//! * [`machine`]: a node on either backend: fork, exec (scripts too), pid namespaces, processes
//!   entered from outside and opens, each running the object's program for its hook.

pub mod btf;
pub mod helpers;
pub mod layout;
pub mod machine;
pub mod mem;
pub mod object;
pub mod vm;
pub mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::elf::MapDef;
use mem::{Kind, Memory};

pub use machine::{Machine, Mode, Outcome};
pub use object::SimObject;
pub use vm::Program;
pub use world::World;

/// The kernel's limit on instructions processed by the verifier; a run that executes more
/// than this never ends in practice (our programs are bounded), so it is an error.
pub const DEFAULT_BUDGET: u64 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("memory fault at {addr:#x} ({len} bytes): {why}")]
    Fault { addr: u64, len: usize, why: String },
    #[error("program `{program}`, instruction {pc}: {what}")]
    Insn {
        program: String,
        pc: usize,
        what: String,
    },
    #[error("program `{0}` ran more than {1} instructions")]
    Budget(String, u64),
    #[error("helper: {0}")]
    Helper(String),
    #[error("loading the object: {0}")]
    Load(String),
    #[error("mocked world: {0}")]
    World(String),
}

pub const MAP_HASH: u32 = 1;
pub const MAP_ARRAY: u32 = 2;
pub const MAP_PERCPU_ARRAY: u32 = 6;
pub const MAP_RINGBUF: u32 = 27;
/// Task storage: a [`Store::Hash`] keyed by the owning task's pid (u32), reached only through
/// `bpf_task_storage_get`, emptied of a task's value when the task exits.
pub const MAP_TASK_STORAGE: u32 = crate::abi::MAP_TYPE_TASK_STORAGE;

/// A map's contents: values live in [`Memory`] regions so a looked-up pointer is bounds-checked
/// against the value size.
#[derive(Clone, Debug)]
pub enum Store {
    Hash(BTreeMap<Vec<u8>, u64>),
    /// Arrays, and per-CPU arrays as seen from one CPU.
    Array(Vec<u64>),
    Ringbuf,
}

#[derive(Clone, Debug)]
pub struct Map {
    pub name: String,
    pub def: MapDef,
    pub store: Store,
}

/// High bits of a map handle (the value `ld_imm64` with a map reference loads): not a region
/// address, so a program that dereferences it faults.
const MAP_HANDLE: u64 = 0xffff_0000_0000_0000;

/// One simulated machine: memory, maps, the mocked world, and what the programs did.
#[derive(Clone, Debug)]
pub struct Sim {
    pub mem: Memory,
    pub maps: Vec<Map>,
    pub world: World,
    /// Ring buffer records submitted, in order (the bytes user space would read).
    pub events: Vec<Vec<u8>>,
    /// `bpf_send_signal` calls: (pid of the current task, signal).
    pub signals: Vec<(u32, u32)>,
    /// Instructions a single run may execute.
    pub budget: u64,
    /// `bpf_ktime_get_boot_ns`: advances by 1000 per call so events are ordered.
    pub ktime: u64,
}

impl Sim {
    /// A machine with `world` laid out in its memory and no maps yet.
    pub fn new(mut world: World) -> Result<Sim, SimError> {
        let mut mem = Memory::default();
        world.lay_out(&mut mem)?;
        Ok(Sim {
            mem,
            maps: Vec::new(),
            world,
            events: Vec::new(),
            signals: Vec::new(),
            budget: DEFAULT_BUDGET,
            ktime: 1_000_000_000,
        })
    }

    /// Adds a map; arrays get their zeroed values now, `initial` fills element 0 (`.rodata`).
    pub fn add_map(
        &mut self,
        name: &str,
        def: MapDef,
        initial: Option<&[u8]>,
    ) -> Result<u32, SimError> {
        let store = match def.map_type {
            MAP_HASH | MAP_TASK_STORAGE => Store::Hash(BTreeMap::new()),
            MAP_ARRAY | MAP_PERCPU_ARRAY => {
                let kind = if initial.is_some() {
                    Kind::ReadOnly
                } else {
                    Kind::Data
                };
                let values = (0..def.max_entries)
                    .map(|i| {
                        let mut v = vec![0; def.value_size as usize];
                        if let (0, Some(init)) = (i, initial) {
                            v.copy_from_slice(init);
                        }
                        self.mem.alloc(format!("map {name}[{i}]"), kind, v)
                    })
                    .collect();
                Store::Array(values)
            }
            MAP_RINGBUF => Store::Ringbuf,
            other => {
                return Err(SimError::Load(format!("map `{name}`: type {other}")));
            }
        };
        self.maps.push(Map {
            name: name.to_string(),
            def,
            store,
        });
        Ok(self.maps.len() as u32 - 1)
    }

    pub fn map_index(&self, name: &str) -> Option<u32> {
        self.maps
            .iter()
            .position(|m| m.name == name)
            .map(|i| i as u32)
    }

    fn map_handle(&self, index: u32) -> u64 {
        MAP_HANDLE | u64::from(index)
    }

    fn map_of_handle(&self, handle: u64) -> Result<usize, SimError> {
        let i = (handle & !MAP_HANDLE) as usize;
        if handle & MAP_HANDLE != MAP_HANDLE || i >= self.maps.len() {
            return Err(SimError::Helper(format!("{handle:#x} is not a map")));
        }
        Ok(i)
    }

    fn map_value_addr(&self, index: u32) -> Option<u64> {
        match &self.maps.get(index as usize)?.store {
            Store::Array(v) => v.first().copied(),
            _ => None,
        }
    }

    /// The value stored under `key` in map `name` (a test's view of a map).
    pub fn map_get(&self, name: &str, key: &[u8]) -> Option<Vec<u8>> {
        let m = &self.maps[self.map_index(name)? as usize];
        let addr = match &m.store {
            Store::Hash(h) => *h.get(key)?,
            Store::Array(v) => *v.get(u32::from_le_bytes(key.try_into().ok()?) as usize)?,
            Store::Ringbuf => return None,
        };
        Some(
            self.mem
                .read_any(addr, m.def.value_size as usize)
                .ok()?
                .to_vec(),
        )
    }

    /// `map[key] = value` in map `name`, from user space (as `guard-run` fills the cgroup map
    /// and writes the rule-off value): a hash map's value is a region of its own, as one the
    /// programs insert; an array's element is overwritten in place.
    pub fn map_put(&mut self, name: &str, key: &[u8], value: &[u8]) -> Result<(), SimError> {
        let i = self
            .map_index(name)
            .ok_or_else(|| SimError::Load(format!("no map `{name}`")))? as usize;
        let def = self.maps[i].def;
        if key.len() != def.key_size as usize || value.len() != def.value_size as usize {
            return Err(SimError::Helper(format!(
                "map `{name}` takes {}-byte keys and {}-byte values",
                def.key_size, def.value_size
            )));
        }
        if let Store::Array(v) = &self.maps[i].store {
            let index = u32::from_le_bytes(key.try_into().unwrap_or([0xff; 4])) as usize;
            let addr = *v.get(index).ok_or_else(|| {
                SimError::Helper(format!("array `{name}` has no element {index}"))
            })?;
            return self.mem.write(addr, value);
        }
        let addr = self
            .mem
            .alloc(format!("map {name} value"), Kind::Data, value.to_vec());
        match &mut self.maps[i].store {
            Store::Hash(h) => {
                h.insert(key.to_vec(), addr);
                Ok(())
            }
            _ => Err(SimError::Helper(format!(
                "`{name}` is neither a hash map nor an array"
            ))),
        }
    }

    /// Rewrites `bytes` at `offset` of the frozen `.rodata*` section `section`: not something
    /// a program can do (the section is read-only to it), but how a harness asks "what if this
    /// table said otherwise" of the very programs (`guardc explain` judges one rule at a time
    /// this way).
    pub fn rodata_poke(
        &mut self,
        section: &str,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), SimError> {
        let i = self
            .map_index(section)
            .ok_or_else(|| SimError::Load(format!("no section `{section}`")))?;
        let base = self
            .map_value_addr(i)
            .ok_or_else(|| SimError::Load(format!("`{section}` has no value")))?;
        self.mem.poke(base + offset as u64, bytes)
    }

    /// The keys of hash map `name`.
    /// Sets a map's capacity, as a loader's `max_entries` override does (aya's
    /// `map_max_entries`).
    pub fn set_max_entries(&mut self, name: &str, max_entries: u32) -> Result<(), SimError> {
        let i = self
            .map_index(name)
            .ok_or_else(|| SimError::Load(format!("no map `{name}`")))?;
        self.maps[i as usize].def.max_entries = max_entries;
        Ok(())
    }

    /// The kernel frees a task's storage with the task: what an exit does to every task
    /// storage map.
    pub fn free_task_storage(&mut self, pid: u32) {
        for m in &mut self.maps {
            if let (MAP_TASK_STORAGE, Store::Hash(h)) = (m.def.map_type, &mut m.store) {
                h.remove(&pid.to_le_bytes().to_vec());
            }
        }
    }

    pub fn map_keys(&self, name: &str) -> Vec<Vec<u8>> {
        match self.map_index(name).map(|i| &self.maps[i as usize].store) {
            Some(Store::Hash(h)) => h.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}
