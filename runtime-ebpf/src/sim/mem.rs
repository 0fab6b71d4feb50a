//! The simulator's memory: a list of regions (a stack frame, a map value, the program's
//! context, a mocked kernel object, a user-space buffer), each addressed as
//! `(index + 1) << 32 | 2^31 + offset`, so address 0 is never valid, every access names the
//! region it falls in, and 2 GiB on either side of a region (a negative offset off the frame
//! pointer, an overrun) still name it and fault there. Every access is bounds-checked: an access outside every region means the
//! program would not have passed the verifier, or the mocked world is missing an object.

use super::SimError;

/// Who may touch a region and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Stack frames, map values, ring buffer records: loads and stores.
    Data,
    /// Frozen `.rodata*` values and the tracepoint context: loads only.
    ReadOnly,
    /// Mocked kernel objects: direct loads (BTF pointers), `probe_read_kernel*`.
    Kernel,
    /// A task's user memory: only `probe_read_user*`.
    User,
}

#[derive(Clone, Debug)]
pub struct Region {
    /// For error messages: `stack`, `map GUARD_TASKS`, `task_struct 42`, ...
    pub name: String,
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// False once freed (a deleted hash entry, a submitted ring buffer record).
    pub live: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Memory {
    regions: Vec<Region>,
}

/// Region addresses use the high 32 bits for the region number.
const SHIFT: u32 = 32;
/// Where offset 0 of a region sits inside its 4 GiB window.
const MIDDLE: u64 = 1 << 31;

impl Memory {
    pub fn alloc(&mut self, name: impl Into<String>, kind: Kind, bytes: Vec<u8>) -> u64 {
        self.regions.push(Region {
            name: name.into(),
            kind,
            bytes,
            live: true,
        });
        ((self.regions.len() as u64) << SHIFT) + MIDDLE
    }

    pub fn free(&mut self, addr: u64) {
        if let Some(r) = self.region_mut_any(addr) {
            r.live = false;
        }
    }

    fn index(addr: u64) -> Option<usize> {
        usize::try_from(addr >> SHIFT).ok()?.checked_sub(1)
    }

    fn region_mut_any(&mut self, addr: u64) -> Option<&mut Region> {
        let i = Self::index(addr)?;
        self.regions.get_mut(i)
    }

    /// The region and offset of `[addr, addr + len)`, if it lies inside one live region.
    fn locate(&self, addr: u64, len: usize) -> Result<(&Region, usize), SimError> {
        let fault = |why: String| SimError::Fault { addr, len, why };
        let i = Self::index(addr).ok_or_else(|| fault("null or non-pointer address".into()))?;
        let r = self
            .regions
            .get(i)
            .ok_or_else(|| fault("no such region".into()))?;
        if !r.live {
            return Err(fault(format!("{} was freed", r.name)));
        }
        let off = (addr & 0xffff_ffff) as i64 - MIDDLE as i64;
        if off < 0 {
            return Err(fault(format!("before {} (offset {off})", r.name)));
        }
        let off = off as usize;
        if off.checked_add(len).is_none_or(|end| end > r.bytes.len()) {
            return Err(fault(format!(
                "outside {} ({} bytes, offset {off})",
                r.name,
                r.bytes.len()
            )));
        }
        Ok((r, off))
    }

    /// The kind of the region `addr` falls in (for helpers that accept only some kinds).
    pub fn kind(&self, addr: u64, len: usize) -> Result<Kind, SimError> {
        Ok(self.locate(addr, len)?.0.kind)
    }

    /// Reads `len` bytes; `allowed` lists the region kinds this kind of access may read.
    pub fn read(&self, addr: u64, len: usize, allowed: &[Kind]) -> Result<&[u8], SimError> {
        let (r, off) = self.locate(addr, len)?;
        if !allowed.contains(&r.kind) {
            return Err(SimError::Fault {
                addr,
                len,
                why: format!("{} ({:?}) may not be read this way", r.name, r.kind),
            });
        }
        Ok(&r.bytes[off..off + len])
    }

    /// Writes `data`; only [`Kind::Data`] regions are writable by programs and helpers.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        let (r, off) = self.locate(addr, data.len())?;
        if r.kind != Kind::Data {
            return Err(SimError::Fault {
                addr,
                len: data.len(),
                why: format!("{} ({:?}) is not writable", r.name, r.kind),
            });
        }
        let i = Self::index(addr).unwrap_or_default();
        self.regions[i].bytes[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Writes into any region: how the world and the user (not the program) fill memory.
    pub fn poke(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        let (_, off) = self.locate(addr, data.len())?;
        let i = Self::index(addr).unwrap_or_default();
        self.regions[i].bytes[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    pub fn read_any(&self, addr: u64, len: usize) -> Result<&[u8], SimError> {
        Ok(&self.locate(addr, len)?.0.bytes[self.locate(addr, len)?.1..][..len])
    }
}
