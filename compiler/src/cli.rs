//! The `guardc` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

use crate::codegen;
use crate::diag::{self, Diagnostic};
use crate::frontend;
use crate::span::Span;

#[derive(Parser)]
#[command(
    name = "guardc",
    version,
    about = "Compile guard policies into BPF objects"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a policy and write its BPF object.
    Compile {
        /// The policy file (`.grd`).
        policy: PathBuf,
        /// Where to write the object.
        #[arg(short, long, default_value = "out.o")]
        output: PathBuf,
        /// Also print the generated programs: `asm` writes annotated BPF assembly to stdout.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
        /// Print table sizes and timing to stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Check policies without writing anything; reports every error of every file.
    Check {
        #[arg(required = true)]
        policies: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    Asm,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MessageFormat {
    Human,
    Json,
}

/// Runs the command; the return value is the process exit status.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Compile {
            policy,
            output,
            emit,
            message_format,
            stats,
        } => compile(&policy, &output, emit, message_format, stats),
        Command::Check {
            policies,
            message_format,
        } => {
            let mut status = 0;
            for p in &policies {
                let Some((name, source)) = read_policy(p) else {
                    status = 1;
                    continue;
                };
                if let Err(d) = frontend::check_source(&name, &source) {
                    report(&name, &source, &d, message_format);
                    status = 1;
                }
            }
            status
        }
    }
}

fn read_policy(path: &Path) -> Option<(String, String)> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        // Invalid UTF-8 is reported by the lexer with a location, so read bytes and convert
        // lossily only to get that far; the lexer sees U+FFFD where the bad bytes were.
        Ok(bytes) => Some((name, String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => {
            eprintln!("error: cannot read `{name}`: {e}");
            None
        }
    }
}

fn report(name: &str, source: &str, diagnostics: &[Diagnostic], format: MessageFormat) {
    match format {
        MessageFormat::Human => {
            let color = std::io::stderr().is_terminal();
            eprint!(
                "{}",
                diag::render_diagnostics(name, source, diagnostics, color)
            );
        }
        MessageFormat::Json => print!("{}", diag::render_json(name, source, diagnostics)),
    }
}

fn compile(
    policy: &Path,
    output: &Path,
    emit: Option<Emit>,
    format: MessageFormat,
    stats: bool,
) -> i32 {
    let started = Instant::now();
    let Some((name, source)) = read_policy(policy) else {
        return 1;
    };
    let checked = match frontend::check_source(&name, &source) {
        Ok(p) => p,
        Err(d) => {
            report(&name, &source, &d, format);
            return 1;
        }
    };
    let compiled = match codegen::compile(&checked, &name) {
        Ok(c) => c,
        Err(e) => {
            let span = match &e {
                codegen::CodegenError::Lower(l) => l.span(),
                _ => None,
            };
            let span = span.unwrap_or_else(|| Span::new(0, 0));
            let d = Diagnostic::error(diag::codes::TABLE_LIMIT, e.to_string(), span, "here");
            report(&name, &source, &[d], format);
            return 1;
        }
    };
    if let Err(e) = write_atomically(output, &compiled.object) {
        eprintln!("error: cannot write `{}`: {e}", output.display());
        return 1;
    }
    if let Some(Emit::Asm) = emit {
        let _ = std::io::stdout().write_all(codegen::listing(&compiled).as_bytes());
    }
    if stats {
        let s = compiled.lowered.stats;
        eprintln!(
            "guardc: {} rules, {} identities; path DFA {} states ({} before minimisation), {} classes; \
             command-line DFA {} states; {} programs, {} instructions; object {} bytes; {:.3} ms",
            checked.rules.len(),
            compiled.lowered.identities.len(),
            s.path_states,
            s.path_states_before_min,
            s.path_classes,
            s.cmdline_states,
            compiled.programs.len(),
            compiled
                .programs
                .iter()
                .map(|p| p.code.insn_count())
                .sum::<usize>(),
            compiled.object.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    0
}

/// Writes next to the target and renames, so a failed compile never leaves half an object
/// where `guard-run` could pick it up.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("o.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
