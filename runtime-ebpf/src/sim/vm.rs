//! The instruction interpreter: every instruction class of the eBPF ISA our assembler emits
//! (ALU and ALU32, JMP and JMP32 with signed compares, LDX/ST/STX of every size, `ld_imm64`
//! plain or with a map reference, helper CALL, EXIT). Registers are u64; pointers are the
//! region addresses of [`super::mem`], so every load and store is bounds-checked.

use super::mem::Kind;
use super::{Sim, SimError};
use crate::asm::Insn;

/// `BPF_PSEUDO_MAP_FD`, `BPF_PSEUDO_MAP_VALUE`: the `src` of an `ld_imm64` after map
/// relocation (the loader writes the map's index where the kernel would have an fd).
pub const PSEUDO_MAP_FD: u8 = 1;
pub const PSEUDO_MAP_VALUE: u8 = 2;
/// The kernel's stack per frame.
pub const STACK_SIZE: usize = 512;

/// A program ready to run: its name and (relocated) instructions.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub section: String,
    pub insns: Vec<Insn>,
}

impl Program {
    pub fn from_code(name: &str, section: &str, code: &[u8]) -> Result<Program, SimError> {
        if !code.len().is_multiple_of(8) {
            return Err(SimError::Load(format!(
                "program `{name}`: {} bytes of code",
                code.len()
            )));
        }
        Ok(Program {
            name: name.to_string(),
            section: section.to_string(),
            insns: code.chunks_exact(8).map(Insn::from_bytes).collect(),
        })
    }
}

fn size_of(code: u8) -> usize {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

fn alu64(op: u8, d: u64, s: u64) -> Option<u64> {
    Some(match op {
        0x00 => d.wrapping_add(s),
        0x10 => d.wrapping_sub(s),
        0x20 => d.wrapping_mul(s),
        // Division by zero gives 0 and modulo by zero leaves dst, as in the kernel.
        0x30 => d.checked_div(s).unwrap_or(0),
        0x40 => d | s,
        0x50 => d & s,
        0x60 => d.wrapping_shl(s as u32 & 63),
        0x70 => d.wrapping_shr(s as u32 & 63),
        0x80 => d.wrapping_neg(),
        0x90 => d.checked_rem(s).unwrap_or(d),
        0xa0 => d ^ s,
        0xb0 => s,
        0xc0 => ((d as i64) >> (s & 63)) as u64,
        _ => return None,
    })
}

fn alu32(op: u8, d: u32, s: u32) -> Option<u32> {
    Some(match op {
        0x00 => d.wrapping_add(s),
        0x10 => d.wrapping_sub(s),
        0x20 => d.wrapping_mul(s),
        0x30 => d.checked_div(s).unwrap_or(0),
        0x40 => d | s,
        0x50 => d & s,
        0x60 => d.wrapping_shl(s & 31),
        0x70 => d.wrapping_shr(s & 31),
        0x80 => d.wrapping_neg(),
        0x90 => d.checked_rem(s).unwrap_or(d),
        0xa0 => d ^ s,
        0xb0 => s,
        0xc0 => ((d as i32) >> (s & 31)) as u32,
        _ => return None,
    })
}

/// The compare of a conditional jump; `wide` false compares the low 32 bits (JMP32).
fn taken(op: u8, d: u64, s: u64, wide: bool) -> Option<bool> {
    let (d, s, sd, ss) = if wide {
        (d, s, d as i64, s as i64)
    } else {
        let (d, s) = (d as u32, s as u32);
        (
            u64::from(d),
            u64::from(s),
            i64::from(d as i32),
            i64::from(s as i32),
        )
    };
    Some(match op {
        0x10 => d == s,
        0x20 => d > s,
        0x30 => d >= s,
        0x40 => d & s != 0,
        0x50 => d != s,
        0x60 => sd > ss,
        0x70 => sd >= ss,
        0xa0 => d < s,
        0xb0 => d <= s,
        0xc0 => sd < ss,
        0xd0 => sd <= ss,
        _ => return None,
    })
}

impl Sim {
    /// Runs `prog` with `r1 = ctx` on a fresh 512-byte stack; returns r0 at EXIT.
    pub fn run(&mut self, prog: &Program, ctx: u64) -> Result<u64, SimError> {
        let stack = self.mem.alloc(
            format!("stack of {}", prog.name),
            Kind::Data,
            vec![0; STACK_SIZE],
        );
        let result = self.execute_ctx(prog, ctx, stack + STACK_SIZE as u64);
        self.mem.free(stack);
        result
    }

    /// Runs `prog` from the registers `r` (r10 is set to a fresh stack) and leaves the final
    /// registers there: for testing instruction sequences that are not whole programs.
    pub fn run_regs(&mut self, prog: &Program, r: &mut [u64; 11]) -> Result<u64, SimError> {
        let stack = self.mem.alloc("stack", Kind::Data, vec![0; STACK_SIZE]);
        r[10] = stack + STACK_SIZE as u64;
        let result = self.execute(prog, r);
        self.mem.free(stack);
        result
    }

    fn execute_ctx(&mut self, prog: &Program, ctx: u64, fp: u64) -> Result<u64, SimError> {
        let mut r = [0u64; 11];
        r[1] = ctx;
        r[10] = fp;
        self.execute(prog, &mut r)
    }

    fn execute(&mut self, prog: &Program, r: &mut [u64; 11]) -> Result<u64, SimError> {
        let mut pc = 0usize;
        let mut budget = self.budget;
        let err = |pc: usize, what: String| SimError::Insn {
            program: prog.name.clone(),
            pc,
            what,
        };
        loop {
            let insn = *prog
                .insns
                .get(pc)
                .ok_or_else(|| err(pc, "jumped or fell outside the program".into()))?;
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| SimError::Budget(prog.name.clone(), self.budget))?;
            let (dst, src) = (usize::from(insn.dst), usize::from(insn.src));
            if dst > 10 || src > 10 {
                return Err(err(pc, format!("bad register in {insn:?}")));
            }
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            let by_reg = insn.code & 0x08 != 0;
            let at = pc;
            pc += 1;
            // A fault inside a load or store carries the instruction it happened at.
            let fault = |e: SimError| match e {
                SimError::Fault { .. } => err(at, e.to_string()),
                other => other,
            };
            match class {
                // ALU64 / ALU32
                0x07 | 0x04 => {
                    if dst == 10 {
                        return Err(err(at, "write to the frame pointer r10".into()));
                    }
                    let s = if by_reg {
                        r[src]
                    } else {
                        insn.imm as i64 as u64
                    };
                    r[dst] = if class == 0x07 {
                        alu64(op, r[dst], s)
                    } else {
                        alu32(op, r[dst] as u32, s as u32).map(u64::from)
                    }
                    .ok_or_else(|| err(at, format!("ALU op {:#04x}", insn.code)))?;
                }
                // JMP / JMP32
                0x05 | 0x06 => match insn.code {
                    0x05 => pc = jump(pc, insn.off, &err)?,
                    0x85 if insn.src == 0 => {
                        let args = [r[1], r[2], r[3], r[4], r[5]];
                        r[0] = self.helper(insn.imm, args).map_err(|e| match e {
                            SimError::Fault { .. } | SimError::Helper(..) => err(at, e.to_string()),
                            other => other,
                        })?;
                        // r1-r5 are clobbered by a call; the verifier makes them unreadable.
                        r[1..6].fill(0xdead_beef_dead_beef);
                    }
                    0x95 => return Ok(r[0]),
                    _ => {
                        let s = if by_reg {
                            r[src]
                        } else {
                            insn.imm as i64 as u64
                        };
                        let t = taken(op, r[dst], s, class == 0x05)
                            .ok_or_else(|| err(at, format!("jump op {:#04x}", insn.code)))?;
                        if t {
                            pc = jump(pc, insn.off, &err)?;
                        }
                    }
                },
                // LDX
                0x01 if insn.code & 0xe0 == 0x60 => {
                    let n = size_of(insn.code);
                    let addr = r[src].wrapping_add(insn.off as i64 as u64);
                    let bytes = self
                        .mem
                        .read(addr, n, &[Kind::Data, Kind::ReadOnly, Kind::Kernel])
                        .map_err(fault)?;
                    let mut w = [0u8; 8];
                    w[..n].copy_from_slice(bytes);
                    r[dst] = u64::from_le_bytes(w);
                }
                // ST (imm) / STX (reg)
                0x02 | 0x03 if insn.code & 0xe0 == 0x60 => {
                    let n = size_of(insn.code);
                    let v = if class == 0x03 {
                        r[src]
                    } else {
                        insn.imm as i64 as u64
                    };
                    let addr = r[dst].wrapping_add(insn.off as i64 as u64);
                    self.mem.write(addr, &v.to_le_bytes()[..n]).map_err(fault)?;
                }
                // ld_imm64 (two slots)
                0x00 if insn.code == 0x18 => {
                    let hi = prog
                        .insns
                        .get(pc)
                        .ok_or_else(|| err(at, "ld_imm64 without its second slot".into()))?;
                    pc += 1;
                    r[dst] = match insn.src {
                        0 => u64::from(insn.imm as u32) | (u64::from(hi.imm as u32) << 32),
                        PSEUDO_MAP_FD => self.map_handle(insn.imm as u32),
                        PSEUDO_MAP_VALUE => self
                            .map_value_addr(insn.imm as u32)
                            .ok_or_else(|| err(at, "ld_imm64 of a map without value".into()))?
                            .wrapping_add(u64::from(hi.imm as u32)),
                        other => return Err(err(at, format!("ld_imm64 src {other}"))),
                    };
                }
                _ => return Err(err(at, format!("unsupported opcode {:#04x}", insn.code))),
            }
        }
    }
}

fn jump(pc: usize, off: i16, err: &dyn Fn(usize, String) -> SimError) -> Result<usize, SimError> {
    usize::try_from(pc as i64 + i64::from(off))
        .map_err(|_| err(pc - 1, format!("jump {off:+} before the program")))
}
