use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guard_runtime::agent::AgentOptions;
use guard_runtime::backend::Choice;
use guard_runtime::containers::StateDirs;
use guard_runtime::lifecycle::PinTarget;
use guard_runtime::loader::Options;
use guard_runtime::sinks::SinkOptions;
use guard_runtime::store::StoreChoice;

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

#[derive(clap::Args)]
struct LoadArgs {
    /// The object written by `guardc compile`.
    object: PathBuf,
    /// The policy's name: its directory under the pin root (default: the object's file
    /// stem). Loading another object under a loaded name replaces that policy.
    #[arg(long)]
    name: Option<String>,
    /// Where policies are pinned (a directory on bpffs).
    #[arg(long, value_name = "DIR", default_value = guard_runtime::pin::DEFAULT_ROOT)]
    pin_root: PathBuf,
    /// On SIGINT/SIGTERM, unload the policy: enforcement ends with the agent (it still
    /// survives a SIGKILL; `guard-run unload` ends it then).
    #[arg(long)]
    unpin_on_exit: bool,
    /// Print alerts as Falco JSON, one object per line (stdout and --output-file).
    #[arg(long)]
    json: bool,
    /// Also append every alert to this file; SIGHUP reopens it (log rotation).
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,
    /// Also POST every alert's Falco JSON to this URL (falcosidekick: http://HOST:2801/).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Alerts the webhook may hold while the receiver is slow; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    webhook_queue: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// On a kernel that cannot deny an open, enforce `deny` rules by killing.
    #[arg(long)]
    deny_as_kill: bool,
    /// Audit mode: judge and alert, but kill and deny nothing; each alert says what would
    /// have happened.
    #[arg(long)]
    audit: bool,
    /// Stop a rule's kills and denials (alert only, until the policy is loaded again) once
    /// it has killed or denied more than N distinct programs within a minute.
    #[arg(long, value_name = "N")]
    safety_valve: Option<usize>,
    /// Also write every open and exec of a path the policy's patterns match, allowed or not,
    /// with its process context, to FILE (JSON lines, appended) for `guardc test --replay`.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The enforcement backend: `auto` probes the kernel (BPF LSM where it can, else
    /// tracepoints), the others insist.
    #[arg(long, value_enum, default_value_t = Choice::Auto)]
    backend: Choice,
    /// Where identities are kept: `auto` uses BPF task storage where the kernel has it (Linux
    /// 5.11+), else a hash map keyed by thread id; the others insist.
    #[arg(long, value_enum, default_value_t = StoreChoice::Auto)]
    identity_store: StoreChoice,
    /// containerd's task state directory (OCI bundles of running containers).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/containerd/io.containerd.runtime.v2.task"
    )]
    containerd_state: PathBuf,
    /// CRI-O's container state directory.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/containers/storage/overlay-containers"
    )]
    crio_state: PathBuf,
    /// Docker's container directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/docker/containers")]
    docker_state: PathBuf,
    /// The node's user database, for `user("name")` subjects.
    #[arg(long, value_name = "FILE", default_value = "/etc/passwd")]
    passwd: PathBuf,
    /// The host's cgroup v2 hierarchy (default: the cgroup2 mount in the mount table; in a
    /// container, mount the host's and name it here).
    #[arg(long, value_name = "DIR")]
    cgroup_root: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Load a policy object (or adopt the same object already pinned, or replace another
    /// version of the policy without a gap), enforce it, and print one alert per event until
    /// interrupted. The policy stays enforced after the agent stops, unless --unpin-on-exit.
    Load(Box<LoadArgs>),
    /// Unload pinned policies: their programs are detached and enforcement ends.
    Unload {
        /// The policies' names (see `guard-run status`).
        names: Vec<String>,
        /// Unload every policy under the pin root.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Where policies are pinned.
        #[arg(long, value_name = "DIR", default_value = guard_runtime::pin::DEFAULT_ROOT)]
        pin_root: PathBuf,
    },
    /// List the pinned policies: backend, whether an agent reads them, kernel and per-rule
    /// counters (matched, killed, denied, alerted), drops.
    Status {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Where policies are pinned.
        #[arg(long, value_name = "DIR", default_value = guard_runtime::pin::DEFAULT_ROOT)]
        pin_root: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(args) => {
            let LoadArgs {
                object,
                name,
                pin_root,
                unpin_on_exit,
                json,
                output_file,
                webhook,
                webhook_queue,
                metrics_addr,
                deny_as_kill,
                audit,
                safety_valve,
                record,
                backend,
                identity_store,
                containerd_state,
                crio_state,
                docker_state,
                passwd,
                cgroup_root,
            } = *args;
            guard_runtime::agent::run_load(
                &object,
                AgentOptions {
                    sinks: SinkOptions {
                        json,
                        file: output_file,
                        webhook,
                        webhook_queue,
                    },
                    metrics_addr,
                    target: PinTarget {
                        name,
                        root: pin_root,
                    },
                    unpin_on_exit,
                    safety_valve,
                    record,
                },
                Options {
                    deny_as_kill,
                    backend,
                    store: identity_store,
                    state_dirs: StateDirs {
                        containerd: containerd_state,
                        crio: crio_state,
                        docker: docker_state,
                    },
                    passwd,
                    cgroup_root,
                    audit,
                },
            )
        }
        Command::Unload {
            names,
            all,
            pin_root,
        } => guard_runtime::status::unload(&pin_root, &names, all),
        Command::Status { json, pin_root } => guard_runtime::status::status(&pin_root, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            guard_runtime::report!("guard-run: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
