//! `guard-uring-open PATH`: opens PATH with an io_uring `IORING_OP_OPENAT` request (no
//! `open` system call) and copies the file to stdout.
//!
//! The attacker's way around syscall hooks: the open runs inside the kernel's io_uring code,
//! where `sys_enter/exit_openat` never fire but the LSM `file_open` hook does. Exit status:
//! 0 when the file was read, 1 when the open failed (the error is printed, e.g. "Permission
//! denied"), 2 on a usage or setup error.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use io_uring::{IoUring, opcode, types};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: guard-uring-open PATH");
        return ExitCode::from(2);
    };
    let Ok(path) = CString::new(path.as_bytes()) else {
        eprintln!("guard-uring-open: the path contains a NUL byte");
        return ExitCode::from(2);
    };
    match open(&path) {
        Ok(Ok(mut file)) => match io::copy(&mut file, &mut io::stdout().lock()) {
            Ok(_) => {
                let _ = io::stdout().flush();
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("guard-uring-open: read: {e}");
                ExitCode::from(1)
            }
        },
        Ok(Err(e)) => {
            eprintln!("guard-uring-open: open: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("guard-uring-open: io_uring: {e}");
            ExitCode::from(2)
        }
    }
}

/// The outer error is io_uring itself failing; the inner one is the open's result.
fn open(path: &CString) -> io::Result<io::Result<File>> {
    let mut ring = IoUring::new(2)?;
    let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_RDONLY | libc::O_CLOEXEC)
        .build()
        .user_data(1);
    // SAFETY: the path outlives the request: we wait for its completion below.
    unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("no completion"))?;
    let fd = cqe.result();
    if fd < 0 {
        return Ok(Err(io::Error::from_raw_os_error(-fd)));
    }
    // SAFETY: a successful OPENAT completion is a new descriptor that nothing else owns.
    Ok(Ok(unsafe { File::from_raw_fd(fd) }))
}
