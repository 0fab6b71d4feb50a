use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "guard-run",
    version,
    about = "Enforce a compiled guard policy on this node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a policy object, enforce it, and print one alert per event until interrupted.
    Load {
        /// The object written by `guardc compile`.
        object: PathBuf,
        /// Print alerts as Falco JSON, one object per line.
        #[arg(long)]
        json: bool,
        /// On a kernel that cannot deny an open, enforce `deny` rules by killing.
        #[arg(long)]
        deny_as_kill: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load {
            object,
            json,
            deny_as_kill,
        } => guard_runtime::agent::run_load(&object, json, deny_as_kill),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guard-run: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
