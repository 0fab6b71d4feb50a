//! `execve` on the simulated node: the exec program after the new image is set up, and on the
//! LSM backend the `execve` tracepoint and the exec check before it; `#!` scripts as the
//! kernel's `binfmt_script` runs them.

use super::{Backend, Machine, Outcome, SEC_ARGV, SEC_EXEC, SEC_LSM_EXEC};
use crate::sim::mem::Kind;
use crate::sim::world::FMODE_READ;
use crate::sim::{SimError, layout};

/// `__NR_execve` on x86_64: what `sys_enter_execve` reports in `__syscall_nr`.
const NR_EXECVE: u32 = 59;
/// The first bytes of an ELF executable (`bprm->buf`): not a `#!` script.
const ELF_MAGIC: &[u8] = b"\x7fELF\x02\x01\x01";

/// The interpreter and its optional argument of a `#!` line, as `binfmt_script` splits it:
/// the first line, blanks trimmed at both ends; the name up to the first blank; the rest,
/// after the blanks that follow the name, as one argument.
pub fn parse_shebang(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix("#!")?;
    let rest = rest.split('\n').next().unwrap_or("");
    let rest = rest.trim_matches([' ', '\t']);
    if rest.is_empty() {
        return None;
    }
    let (name, arg) = match rest.find([' ', '\t']) {
        Some(i) => (&rest[..i], Some(rest[i..].trim_start_matches([' ', '\t']))),
        None => (rest, None),
    };
    Some((name.to_string(), arg.map(str::to_string)))
}

/// The process name an exec gives: the last component of the name exec was asked to run
/// (the kernel's `kbasename(bprm->filename)`), at most 15 bytes.
pub fn comm_of(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    base.chars().take(15).collect()
}

impl Machine {
    /// `execve(argv[0], argv)` in `pid`, running the program at `exe` (the file the kernel
    /// opens: symbolic links resolved). The exec program judges the exec rules.
    pub fn exec(&mut self, pid: u32, argv: &[&str], exe: &str) -> Result<Outcome, SimError> {
        let filename = argv.first().copied().unwrap_or(exe);
        self.exec_path(pid, argv, exe, filename)
    }

    /// [`Machine::exec`] with the name exec was asked to run given (`comm` comes from it).
    /// On the LSM backend the `execve` tracepoint and the exec check run first, in the
    /// caller's image: a refusal there fails the `execve` (the caller keeps its image) and the
    /// exec program does not run.
    pub fn exec_path(
        &mut self,
        pid: u32,
        argv: &[&str],
        exe: &str,
        filename: &str,
    ) -> Result<Outcome, SimError> {
        self.exec_file(pid, argv, exe, filename, None)
    }

    /// `execve` of the `#!` script at `script` (its first line `line`, e.g. `#!/bin/sh -e`),
    /// run as `argv` (`argv[0]` is the name asked for). As the kernel's `binfmt_script` does,
    /// the interpreter runs with the command line `interpreter [arg] argv[0] argv[1..]`, and
    /// the process is named after the script. On the LSM backend the exec check runs for the
    /// script, then for its interpreter.
    pub fn exec_script(
        &mut self,
        pid: u32,
        argv: &[&str],
        script: &str,
        line: &str,
    ) -> Result<Outcome, SimError> {
        let filename = argv.first().copied().unwrap_or(script);
        self.exec_file(pid, argv, script, filename, Some(line))
    }

    fn exec_file(
        &mut self,
        pid: u32,
        argv: &[&str],
        exe: &str,
        filename: &str,
        shebang: Option<&str>,
    ) -> Result<Outcome, SimError> {
        self.task(pid)?;
        let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let bprm = self.binprm(exe, filename, argv.len())?;
        let mut out = Outcome::none();
        if self.backend == Backend::Lsm {
            let name = self.user_string(pid, filename);
            let array = self.user_argv(pid, &argv);
            let mut ctx = vec![0u8; 48];
            ctx[4..8].copy_from_slice(&pid.to_le_bytes());
            ctx[8..12].copy_from_slice(&NR_EXECVE.to_le_bytes());
            ctx[16..24].copy_from_slice(&name.to_le_bytes());
            ctx[24..32].copy_from_slice(&array.to_le_bytes());
            out = out.then(self.fire(SEC_ARGV, pid, ctx)?);
        }
        if let Some(line) = shebang {
            if self.backend == Backend::Lsm {
                self.set_buf(bprm, line.as_bytes())?;
                out = out.then(self.fire(SEC_LSM_EXEC, pid, Self::words(&[bprm]))?);
                if out.denied || self.dead.contains(&pid) {
                    return Ok(out);
                }
            }
            // binfmt_script: the interpreter, run on the script, becomes the file to run.
            let (interp, arg) = parse_shebang(line).ok_or_else(|| {
                SimError::World(format!("`{line}` is not a `#!` line the kernel accepts"))
            })?;
            let mut new = vec![interp.clone()];
            new.extend(arg);
            new.push(filename.to_string());
            new.extend(argv.iter().skip(1).cloned());
            argv = new;
            self.rebind(bprm, &interp, argv.len())?;
        }
        if self.backend == Backend::Lsm {
            out = out.then(self.fire(SEC_LSM_EXEC, pid, Self::words(&[bprm]))?);
            if out.denied || self.dead.contains(&pid) {
                return Ok(out);
            }
        }
        let mem = &mut self.sim.mem;
        self.sim
            .world
            .set_image(mem, pid, &argv, &comm_of(filename))?;
        let words = Self::words(&[self.sim.world.task_addr[&pid], u64::from(pid), bprm]);
        Ok(out.then(self.fire(SEC_EXEC, pid, words)?))
    }

    /// A NUL-terminated string in `pid`'s user memory.
    fn user_string(&mut self, pid: u32, s: &str) -> u64 {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.sim
            .mem
            .alloc(format!("user string of {pid}"), Kind::User, bytes)
    }

    /// `argv` as a caller passes it to `execve`: a NULL-terminated array of pointers to
    /// strings, all in the caller's user memory.
    fn user_argv(&mut self, pid: u32, argv: &[String]) -> u64 {
        let mut array: Vec<u8> = argv
            .iter()
            .flat_map(|a| self.user_string(pid, a).to_le_bytes())
            .collect();
        array.extend_from_slice(&0u64.to_le_bytes());
        self.sim
            .mem
            .alloc(format!("argv array of {pid}"), Kind::User, array)
    }

    /// The `linux_binprm` of an exec of `exe`, a binary (`buf` holds ELF's magic).
    fn binprm(&mut self, exe: &str, filename: &str, argc: usize) -> Result<u64, SimError> {
        let (size, _) = layout::struct_layout("linux_binprm").map_err(SimError::World)?;
        let bprm = self.sim.mem.alloc(
            format!("linux_binprm of {exe}"),
            Kind::Kernel,
            vec![0; size as usize],
        );
        let name = self.kernel_string(filename);
        self.put_bprm(bprm, "filename", &name.to_le_bytes())?;
        self.rebind(bprm, exe, argc)?;
        self.put_bprm(bprm, "interp", &name.to_le_bytes())?;
        Ok(bprm)
    }

    /// Points `bprm` at the binary `exe` (a script's interpreter, once `binfmt_script` opened
    /// it): its file, the first bytes the kernel read from it, the name the next `argv[0]`
    /// comes from, and the argument count.
    fn rebind(&mut self, bprm: u64, exe: &str, argc: usize) -> Result<(), SimError> {
        let mem = &mut self.sim.mem;
        let file = self.sim.world.file_struct(mem, exe, FMODE_READ)?;
        let name = self.kernel_string(exe);
        self.put_bprm(bprm, "file", &file.to_le_bytes())?;
        self.put_bprm(bprm, "argc", &(argc as u32).to_le_bytes())?;
        self.put_bprm(bprm, "interp", &name.to_le_bytes())?;
        self.set_buf(bprm, ELF_MAGIC)
    }

    /// `bprm->buf`: the file's first bytes (256 at most, the rest zero).
    fn set_buf(&mut self, bprm: u64, first: &[u8]) -> Result<(), SimError> {
        let mut buf = [0u8; 256];
        let n = first.len().min(256);
        buf[..n].copy_from_slice(&first[..n]);
        self.put_bprm(bprm, "buf", &buf)
    }

    fn put_bprm(&mut self, bprm: u64, field: &str, v: &[u8]) -> Result<(), SimError> {
        let off = layout::offset("linux_binprm", &[field]).map_err(SimError::World)?;
        self.sim.mem.poke(bprm + u64::from(off), v)
    }

    fn kernel_string(&mut self, s: &str) -> u64 {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.sim
            .mem
            .alloc(format!("kernel string {s}"), Kind::Kernel, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_split_as_binfmt_script_splits_them() {
        let p = |l: &str| parse_shebang(l);
        assert_eq!(p("#!/bin/sh"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            p("#! /bin/sh -e \n"),
            Some(("/bin/sh".into(), Some("-e".into())))
        );
        // The argument is the rest of the line, blanks inside kept.
        assert_eq!(
            p("#!/usr/bin/env\tpython3 -u\nimport x"),
            Some(("/usr/bin/env".into(), Some("python3 -u".into())))
        );
        assert_eq!(p("#!   \n"), None);
        assert_eq!(p("echo"), None);
        assert_eq!(
            comm_of("/tmp/a-rather-long-script-name.sh"),
            "a-rather-long-s"
        );
    }
}
