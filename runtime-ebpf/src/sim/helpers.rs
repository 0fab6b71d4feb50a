//! The kernel helpers our programs call (`grep Helper:: src/programs`), answered from the
//! mocked world and the simulator's maps. Argument errors the verifier would have refused
//! (a key outside the stack, a bad map handle) are errors; run-time failures the kernel
//! reports to the program (a probe read of a bad address, a full hash map) are returned as
//! the kernel's negative errno.

use super::mem::Kind;
use super::{Sim, SimError, Store};

const EFAULT: i64 = -14;
const ENOENT: i64 = -2;
const EEXIST: i64 = -17;
const E2BIG: i64 = -7;
const EINVAL: i64 = -22;

fn neg(e: i64) -> u64 {
    e as u64
}

impl Sim {
    pub(super) fn helper(&mut self, id: i32, a: [u64; 5]) -> Result<u64, SimError> {
        let task = || self.world.current_task().cloned();
        Ok(match id {
            1 => self.map_lookup(a[0], a[1])?,
            2 => self.map_update(a[0], a[1], a[2], a[3])?,
            3 => self.map_delete(a[0], a[1])?,
            14 => {
                let t = task()?;
                (u64::from(t.tgid) << 32) | u64::from(t.pid)
            }
            15 => {
                let t = task()?;
                (u64::from(t.gid) << 32) | u64::from(t.uid)
            }
            16 => {
                let t = task()?;
                let mut buf = vec![0u8; a[1] as usize];
                for (b, c) in buf
                    .iter_mut()
                    .zip(t.comm.bytes())
                    .take((a[1] as usize).saturating_sub(1))
                {
                    *b = c;
                }
                self.mem.write(a[0], &buf)?;
                0
            }
            80 => task()?.cgroup,
            109 => {
                self.signals.push((task()?.pid, a[0] as u32));
                0
            }
            112 => self.probe_read(a[0], a[1], a[2], &[Kind::User])?,
            113 => self.probe_read(
                a[0],
                a[1],
                a[2],
                &[Kind::Kernel, Kind::Data, Kind::ReadOnly],
            )?,
            114 => self.probe_read_str(a[0], a[1], a[2], &[Kind::User])?,
            115 => self.probe_read_str(
                a[0],
                a[1],
                a[2],
                &[Kind::Kernel, Kind::Data, Kind::ReadOnly],
            )?,
            125 => {
                self.ktime += 1000;
                self.ktime
            }
            131 => {
                let m = self.map_of_handle(a[0])?;
                if !matches!(self.maps[m].store, Store::Ringbuf) {
                    return Err(SimError::Helper(
                        "ringbuf_reserve on a non-ringbuf map".into(),
                    ));
                }
                self.mem
                    .alloc("ring buffer record", Kind::Data, vec![0; a[1] as usize])
            }
            132 => {
                let r = self.mem.kind(a[0], 0)?;
                if r != Kind::Data {
                    return Err(SimError::Helper("ringbuf_submit of a non-record".into()));
                }
                // The record is the whole region the reserve made; a[0] is its start.
                let len = (0..)
                    .take_while(|&n| self.mem.read_any(a[0], n + 1).is_ok())
                    .count();
                self.events.push(self.mem.read_any(a[0], len)?.to_vec());
                self.mem.free(a[0]);
                0
            }
            156 => self.task_storage_get(a[0], a[1], a[2], a[3])?,
            158 => self.world.task_addr.get(&task()?.pid).copied().unwrap_or(0),
            other => return Err(SimError::Helper(format!("helper {other} is not mocked"))),
        })
    }

    fn probe_read(&mut self, dst: u64, n: u64, src: u64, from: &[Kind]) -> Result<u64, SimError> {
        let n = n as usize;
        match self.mem.read(src, n, from) {
            Ok(bytes) => {
                let bytes = bytes.to_vec();
                self.mem.write(dst, &bytes)?;
                Ok(0)
            }
            Err(_) => {
                // The kernel zeroes the destination when the source faults.
                self.mem.write(dst, &vec![0; n])?;
                Ok(neg(EFAULT))
            }
        }
    }

    /// Copies up to `n - 1` bytes and a NUL; returns the length with the NUL.
    fn probe_read_str(
        &mut self,
        dst: u64,
        n: u64,
        src: u64,
        from: &[Kind],
    ) -> Result<u64, SimError> {
        let n = n as usize;
        self.mem.read(dst, n, &[Kind::Data])?;
        let mut out = Vec::new();
        while out.len() + 1 < n {
            match self.mem.read(src + out.len() as u64, 1, from) {
                Ok([0]) => break,
                Ok(b) => out.push(b[0]),
                Err(_) if out.is_empty() => return Ok(neg(EFAULT)),
                // The string runs off its object: the kernel's read would stop at the fault.
                Err(_) => return Ok(neg(EFAULT)),
            }
        }
        out.push(0);
        self.mem.write(dst, &out)?;
        Ok(out.len() as u64)
    }

    fn key(&self, m: usize, key: u64) -> Result<Vec<u8>, SimError> {
        let size = self.maps[m].def.key_size as usize;
        Ok(self
            .mem
            .read(key, size, &[Kind::Data, Kind::ReadOnly])?
            .to_vec())
    }

    /// A map the `bpf_map_*_elem` helpers reach: not task storage, which the kernel's
    /// verifier lets programs reach only through `bpf_task_storage_get`.
    fn elem_map(&self, map: u64) -> Result<usize, SimError> {
        let m = self.map_of_handle(map)?;
        if self.maps[m].def.map_type == super::MAP_TASK_STORAGE {
            return Err(SimError::Helper(format!(
                "map `{}` is task storage: only bpf_task_storage_get reaches it",
                self.maps[m].name
            )));
        }
        Ok(m)
    }

    /// `bpf_task_storage_get(map, task, value, flags)`: the value of the task at address
    /// `task` (0 for none), created (from `value`, else zeroed) with
    /// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
    fn task_storage_get(
        &mut self,
        map: u64,
        task: u64,
        value: u64,
        flags: u64,
    ) -> Result<u64, SimError> {
        let m = self.map_of_handle(map)?;
        let def = self.maps[m].def;
        if def.map_type != super::MAP_TASK_STORAGE {
            return Err(SimError::Helper(format!(
                "bpf_task_storage_get on map `{}`, which is not task storage",
                self.maps[m].name
            )));
        }
        if flags > 1 {
            return Ok(neg(EINVAL));
        }
        let Some((&pid, _)) = self.world.task_addr.iter().find(|(_, a)| **a == task) else {
            if task == 0 {
                return Ok(0);
            }
            return Err(SimError::Helper(format!(
                "bpf_task_storage_get: {task:#x} is no task"
            )));
        };
        let k = pid.to_le_bytes().to_vec();
        if let Store::Hash(h) = &self.maps[m].store
            && let Some(&addr) = h.get(&k)
        {
            return Ok(addr);
        }
        if flags == 0 {
            return Ok(0);
        }
        let v = if value == 0 {
            vec![0; def.value_size as usize]
        } else {
            self.mem
                .read(
                    value,
                    def.value_size as usize,
                    &[Kind::Data, Kind::ReadOnly],
                )?
                .to_vec()
        };
        let name = self.maps[m].name.clone();
        let addr = self
            .mem
            .alloc(format!("map {name} value of task {pid}"), Kind::Data, v);
        if let Store::Hash(h) = &mut self.maps[m].store {
            h.insert(k, addr);
        }
        Ok(addr)
    }

    fn map_lookup(&mut self, map: u64, key: u64) -> Result<u64, SimError> {
        let m = self.elem_map(map)?;
        let k = self.key(m, key)?;
        Ok(match &self.maps[m].store {
            Store::Hash(h) => h.get(&k).copied().unwrap_or(0),
            Store::Array(v) => {
                let i = u32::from_le_bytes(k[..4].try_into().unwrap_or_default());
                v.get(i as usize).copied().unwrap_or(0)
            }
            Store::Ringbuf => return Err(SimError::Helper("lookup in a ring buffer".into())),
        })
    }

    fn map_update(&mut self, map: u64, key: u64, value: u64, flags: u64) -> Result<u64, SimError> {
        let m = self.elem_map(map)?;
        let k = self.key(m, key)?;
        let def = self.maps[m].def;
        let v = self
            .mem
            .read(
                value,
                def.value_size as usize,
                &[Kind::Data, Kind::ReadOnly],
            )?
            .to_vec();
        let name = self.maps[m].name.clone();
        let existing = match &self.maps[m].store {
            Store::Hash(h) => h.get(&k).copied(),
            Store::Array(a) => {
                let i = u32::from_le_bytes(k[..4].try_into().unwrap_or_default());
                match a.get(i as usize) {
                    Some(&addr) => Some(addr),
                    None => return Ok(neg(E2BIG)),
                }
            }
            Store::Ringbuf => return Err(SimError::Helper("update of a ring buffer".into())),
        };
        match (flags, existing) {
            (1, Some(_)) => return Ok(neg(EEXIST)),
            (2, None) => return Ok(neg(ENOENT)),
            (f, _) if f > 2 => return Ok(neg(EINVAL)),
            _ => {}
        }
        if let Some(addr) = existing {
            self.mem.poke(addr, &v)?;
            return Ok(0);
        }
        let Store::Hash(h) = &self.maps[m].store else {
            return Ok(neg(EINVAL));
        };
        if h.len() >= def.max_entries as usize {
            return Ok(neg(E2BIG));
        }
        let addr = self.mem.alloc(format!("map {name} value"), Kind::Data, v);
        if let Store::Hash(h) = &mut self.maps[m].store {
            h.insert(k, addr);
        }
        Ok(0)
    }

    fn map_delete(&mut self, map: u64, key: u64) -> Result<u64, SimError> {
        let m = self.elem_map(map)?;
        let k = self.key(m, key)?;
        let removed = match &mut self.maps[m].store {
            Store::Hash(h) => h.remove(&k),
            _ => return Ok(neg(EINVAL)),
        };
        Ok(match removed {
            Some(addr) => {
                // Programs may still hold the pointer (RCU keeps it readable in the kernel);
                // the simulator keeps the region so such a read sees the old value.
                let _ = addr;
                0
            }
            None => neg(ENOENT),
        })
    }
}
