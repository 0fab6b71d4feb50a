/// `eprintln!` that cannot panic. guard-run reports on stderr, and `eprintln!` panics when the
/// write fails (a closed pipe: Rust ignores SIGPIPE). An agent whose stderr reader went away
/// must go on enforcing and alerting, and stop cleanly when told to.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `println!` that cannot panic, for command output (`status | head` closes the pipe early).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod agent;
pub mod alert;
pub mod backend;
pub mod cgroups;
pub mod clock;
pub mod containers;
pub mod drops;
pub mod fs;
pub mod lifecycle;
pub mod loader;
pub mod metrics;
pub mod object;
pub mod pin;
pub mod procscan;
pub mod record;
pub mod scope;
pub mod sinks;
pub mod status;
pub mod store;
pub mod users;
pub mod valve;
pub mod webhook;
