//! Runs QEMU (TCG: KVM hangs on this host), streams the serial console to a log file and the
//! terminal, and enforces the timeout.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::kernel::Kernel;
use super::{Share, sh_quote};

/// The guest kernel's command line: serial console, `bpf` among the LSMs, and a panic ends the
/// VM at once (with `-no-reboot`). A soft lockup panics too, with every CPU's stack on the
/// console (`loglevel=5` lets the traces through): a CI run once sat 15 minutes in one, two
/// CPUs spinning in the kernel, until the ring's timeout, with no trace to say where.
pub const APPEND: &str = "console=ttyS0 quiet loglevel=5 lsm=lockdown,capability,landlock,bpf \
                          softlockup_panic=1 softlockup_all_cpu_backtrace=1 panic=-1";

pub struct Run {
    /// The console, line by line (carriage returns dropped).
    pub lines: Vec<String>,
    /// QEMU's exit status; `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// From QEMU's start to the guest's first marker (boot, modules, 9p, switch_root).
    pub boot: Option<Duration>,
}

fn args(kernel: &Kernel, initrd: &Path, shares: &[Share]) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "2048",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.push(kernel.vmlinuz.clone().into());
    a.push("-initrd".into());
    a.push(initrd.into());
    a.push("-append".into());
    a.push(APPEND.into());
    a.push("-virtfs".into());
    a.push(
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap".into(),
    );
    for s in shares {
        a.push("-virtfs".into());
        // QEMU's option syntax: a comma in a value is written twice.
        a.push(
            format!(
                "local,path={},mount_tag={},security_model=none,readonly=on,multidevs=remap",
                s.path.to_string_lossy().replace(',', ",,"),
                s.tag
            )
            .into(),
        );
    }
    a
}

pub fn boot(
    qemu: &Path,
    kernel: &Kernel,
    initrd: &Path,
    shares: &[Share],
    log: &Path,
    timeout: Duration,
    keep: bool,
) -> Result<Run> {
    let args = args(kernel, initrd, shares);
    if keep {
        let shown: Vec<String> = args
            .iter()
            .map(|a| sh_quote(&a.to_string_lossy()))
            .collect();
        println!(
            "to rerun the VM by hand (Ctrl-A X quits):\n  {} {}",
            qemu.display(),
            shown.join(" ")
        );
    }
    let mut log_file =
        fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    println!(
        "console: {} (timeout {} s)",
        log.display(),
        timeout.as_secs()
    );
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut lines = Vec::new();
    let mut boot = None;
    let mut timed_out = false;
    let mut status = None;
    let deadline = started + timeout;
    let mut take = |raw: Vec<u8>, lines: &mut Vec<String>| {
        let _ = log_file.write_all(&raw);
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches(['\n', '\r']).replace('\r', "");
        if boot.is_none() && text.contains(super::image::MARKER) {
            boot = Some(started.elapsed());
        }
        println!("vm| {}", printable(&text));
        lines.push(text);
    };
    let mut eof = false;
    loop {
        if eof {
            std::thread::sleep(Duration::from_millis(200));
        } else {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(raw) => take(raw, &mut lines),
                Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        if let Some(st) = child.try_wait()? {
            status = Some(st);
            // The pipe is closed now: drain what is left.
            while let Ok(raw) = rx.recv() {
                take(raw, &mut lines);
            }
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            println!(
                "== vm-test: timeout: the VM ran longer than {} s; stopping QEMU",
                timeout.as_secs()
            );
            let _ = child.kill();
            let _ = child.wait();
            while let Ok(raw) = rx.recv_timeout(Duration::from_secs(2)) {
                take(raw, &mut lines);
            }
            break;
        }
    }
    let _ = reader.join();
    let _ = log_file.flush();
    Ok(Run {
        lines,
        status,
        timed_out,
        elapsed: started.elapsed(),
        boot,
    })
}

/// The line without terminal control sequences (SeaBIOS clears the screen on the serial port).
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_dropped_from_the_echo() {
        assert_eq!(printable("\u{1b}[2J\u{1b}[01;01Hboot\u{1b}c ok"), "boot ok");
        assert_eq!(printable("a\tb\u{7}"), "a\tb");
    }
}
