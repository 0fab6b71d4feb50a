//! The `guardc` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::checked;
use crate::codegen::{self, CodegenError};
use crate::diag::{self, Diagnostic};
use crate::fmt::format_source;
use crate::frontend;
use crate::lower::{self, LowerWarning, Lowered};
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
        #[command(flatten)]
        diagnostics: DiagnosticArgs,
        /// Print table sizes and timing to stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Check policies as `compile` would, table limits and lints included, without writing
    /// anything; reports every error and warning of every file.
    Check {
        #[arg(required = true)]
        policies: Vec<PathBuf>,
        #[command(flatten)]
        diagnostics: DiagnosticArgs,
    },
    /// Run each policy's test cases (`NAME.cases.toml` next to `NAME.grd`) on its compiled
    /// object, in a user-space BPF interpreter with the kernel mocked; exits with status 1 if
    /// a case fails.
    Test {
        /// Directories (searched for policies with a case file), policies or case files; with
        /// --replay, the one policy (`.grd`) or compiled object (`.o`) to judge the record with.
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// Judge the operations in FILE (written by `guard-run load --record`) with the policy
        /// instead, and report each one whose verdict differs from the recorded one; exits
        /// with status 1 if any does.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
        #[command(flatten)]
        diagnostics: DiagnosticArgs,
    },
    /// Explain one test case: the process tree as the tracking programs saw it, each rule
    /// covering the operation (in source order) and what it says, and the final verdict.
    Explain {
        /// The policy (`.grd`).
        policy: PathBuf,
        /// The case's `name`.
        case: String,
        /// The case file (default: the policy's `NAME.cases.toml`).
        #[arg(long)]
        cases: Option<PathBuf>,
        /// The backend whose programs judge the case.
        #[arg(long, value_enum, default_value_t = BackendArg::Tracepoint)]
        backend: BackendArg,
        #[command(flatten)]
        diagnostics: DiagnosticArgs,
    },
    /// Run the language server for editors (Language Server Protocol on stdin and stdout):
    /// `check`'s diagnostics as you type, hover, go to definition, completion, formatting.
    Lsp {
        /// Take `import`ed modules from DIR/NAME.grd instead of the standard library built into
        /// guardc.
        #[arg(long, value_name = "DIR")]
        stdlib_dir: Option<PathBuf>,
        /// Accepted for clients that always pass it; stdio is the only transport.
        #[arg(long, hide = true)]
        stdio: bool,
    },
    /// Print policies in canonical layout (comments kept); refuses files with syntax errors.
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print nothing; exit with status 1 if a file is not in canonical layout.
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Rewrite the files in place instead of printing them.
        #[arg(long)]
        write: bool,
    },
}

/// How the front end runs and reports.
#[derive(Args)]
struct DiagnosticArgs {
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,
    /// Fail (exit status 1) when there are warnings.
    #[arg(long)]
    deny_warnings: bool,
    /// Take `import`ed modules from DIR/NAME.grd instead of the standard library built into
    /// guardc.
    #[arg(long, value_name = "DIR")]
    stdlib_dir: Option<PathBuf>,
}

impl DiagnosticArgs {
    fn options(&self) -> frontend::Options {
        frontend::Options {
            stdlib_dir: self.stdlib_dir.clone(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Tracepoint,
    Lsm,
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
            diagnostics,
            stats,
        } => compile(&policy, &output, emit, &diagnostics, stats),
        Command::Check {
            policies,
            diagnostics,
        } => {
            let mut status = 0;
            for p in &policies {
                if !check(p, &diagnostics) {
                    status = 1;
                }
            }
            status
        }
        Command::Test {
            paths,
            replay: Some(record),
            diagnostics,
        } => replay(&record, &paths, &diagnostics),
        Command::Test {
            paths,
            replay: None,
            diagnostics,
        } => test(&paths, &diagnostics),
        Command::Explain {
            policy,
            case,
            cases,
            backend,
            diagnostics,
        } => explain(&policy, &case, cases.as_deref(), backend, &diagnostics),
        Command::Lsp { stdlib_dir, .. } => crate::lsp::run(frontend::Options { stdlib_dir }),
        Command::Fmt {
            files,
            check,
            write,
        } => {
            let mut status = 0;
            for f in &files {
                if !fmt(f, check, write) {
                    status = 1;
                }
            }
            status
        }
    }
}

/// Reads, checks and lowers a policy, then reports every diagnostic of the file at once, the
/// front end's and lowering's together in file order. `check` and `compile` both come through
/// here, so they report the same diagnostics for the same file; they differ only in
/// `back_end` (lowering alone, or lowering and code generation) and `lowered` finds the
/// tables in what it returns. Returns the checked policy and what the back end made of it, or
/// `None` if anything failed, or if there are warnings and they are denied.
fn build<T>(
    path: &Path,
    args: &DiagnosticArgs,
    back_end: impl FnOnce(&checked::Policy, &str) -> Result<T, CodegenError>,
    lowered: impl Fn(&T) -> &Lowered,
) -> Option<(checked::Policy, T)> {
    let (name, source) = read_policy(path)?;
    let policy = match frontend::check_source_with(&name, &source, &args.options()) {
        Ok(policy) => policy,
        Err(d) => {
            // Lowering needs a checked policy: front-end errors are all there is to say.
            report(&name, &source, &d, args.message_format);
            return None;
        }
    };
    let mut diagnostics = policy.warnings.clone();
    let output = match back_end(&policy, &name) {
        Ok(output) => {
            diagnostics.extend(lowered(&output).warnings.iter().map(lower_warning));
            Some(output)
        }
        Err(e) => {
            diagnostics.push(back_end_error(&e));
            None
        }
    };
    diag::sort(&mut diagnostics);
    report(&name, &source, &diagnostics, args.message_format);
    let output = output?;
    if args.deny_warnings && !diagnostics.is_empty() {
        return None;
    }
    Some((policy, output))
}

/// `guardc check` for one file: everything `compile` does short of generating code, so it
/// reports the same diagnostics and fails when `compile` would; `false` if it fails.
fn check(path: &Path, args: &DiagnosticArgs) -> bool {
    let lower = |policy: &checked::Policy, _: &str| Ok(lower::lower(policy)?);
    build(path, args, lower, |lowered| lowered).is_some()
}

/// `guardc fmt` for one file; `false` if it has syntax errors, cannot be
/// read or written, or (with `--check`) is not in canonical layout.
fn fmt(path: &Path, check: bool, write: bool) -> bool {
    let Some((name, source)) = read_policy(path) else {
        return false;
    };
    let formatted = match format_source(&source) {
        Ok(text) => text,
        Err(d) => {
            report(&name, &source, &d, MessageFormat::Human);
            return false;
        }
    };
    if check {
        if formatted != source {
            eprintln!("`{name}` is not in canonical layout (run `guardc fmt --write {name}`)");
            return false;
        }
        return true;
    }
    if write {
        if formatted != source
            && let Err(e) = std::fs::write(path, &formatted)
        {
            eprintln!("error: cannot write `{name}`: {e}");
            return false;
        }
        return true;
    }
    print!("{formatted}");
    true
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
    if diagnostics.is_empty() {
        return;
    }
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
    args: &DiagnosticArgs,
    stats: bool,
) -> i32 {
    let started = Instant::now();
    let Some((checked, compiled)) = build(policy, args, codegen::compile, |c| &c.lowered) else {
        return 1;
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

/// `guardc test`: compiles each policy in memory and runs its cases.
fn test(paths: &[PathBuf], args: &DiagnosticArgs) -> i32 {
    let policies = match crate::cases::discover(paths) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let compile = |p: &Path| {
        build(p, args, codegen::compile, |c| &c.lowered).map(|(_, c)| (c.object, c.metadata))
    };
    let mut stdout = std::io::stdout().lock();
    match crate::cases::run_all(&policies, compile, &mut stdout) {
        Ok(sum) if sum.failed == 0 => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            1
        }
    }
}

/// `guardc test --replay`: a record judged by one policy or object.
fn replay(record: &Path, paths: &[PathBuf], args: &DiagnosticArgs) -> i32 {
    let [target] = paths else {
        eprintln!("error: --replay judges the record with one policy (`.grd`) or object (`.o`)");
        return 1;
    };
    let compile = |p: &Path| {
        build(p, args, codegen::compile, |c| &c.lowered).map(|(_, c)| (c.object, c.metadata))
    };
    let mut stdout = std::io::stdout().lock();
    match crate::cases::replay_file(record, target, compile, &mut stdout) {
        Ok(sum) if sum.differ() == 0 && sum.not_replayed == 0 => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `guardc explain`: one case of a policy, rule by rule.
fn explain(
    policy: &Path,
    case: &str,
    cases: Option<&Path>,
    backend: BackendArg,
    args: &DiagnosticArgs,
) -> i32 {
    let backend = match backend {
        BackendArg::Tracepoint => guard_ebpf::abi::Backend::Tracepoint,
        BackendArg::Lsm => guard_ebpf::abi::Backend::Lsm,
    };
    let compile = |p: &Path| {
        build(p, args, codegen::compile, |c| &c.lowered).map(|(_, c)| (c.object, c.metadata))
    };
    match crate::cases::explain_case(policy, case, cases, backend, compile) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Why the back end failed, as a diagnostic: a policy the tables cannot express (or, for an
/// internal error, what went wrong). Some limits, and internal errors, belong to no single
/// place in the policy; the start of the file stands in.
pub(crate) fn back_end_error(e: &CodegenError) -> Diagnostic {
    let span = match e {
        CodegenError::Lower(l) => l.span(),
        _ => None,
    };
    let span = span.unwrap_or_else(|| Span::new(0, 0));
    Diagnostic::error(diag::codes::TABLE_LIMIT, e.to_string(), span, "here")
}

/// A lowering warning as a diagnostic, rendered like the front end's.
pub(crate) fn lower_warning(w: &LowerWarning) -> Diagnostic {
    let mut d = Diagnostic::warning(w.code, w.message.clone(), w.span, w.label.clone());
    for (span, label) in &w.secondary {
        d = d.with_secondary(*span, label.clone());
    }
    match &w.help {
        Some(help) => d.with_help(help.clone()),
        None => d,
    }
}

/// Writes next to the target and renames, so a failed compile never leaves half an object
/// where `guard-run` could pick it up.
/// Writes the object whole or not at all: a reader (a `guard-run` watching the file) never
/// sees half an object. Only a regular file (or a new one) is replaced by rename; anything
/// else (`-o /dev/null`, a pipe) is written to in place, so a device is never replaced by a
/// file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return std::fs::write(path, bytes),
        _ => {}
    }
    let tmp = path.with_extension("o.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> i32 {
        run(Cli::parse_from(
            std::iter::once("guardc").chain(args.iter().copied()),
        ))
    }

    #[test]
    fn compiling_to_dev_null_leaves_the_device_alone() {
        let dir = std::env::temp_dir().join(format!("guardc-null-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let policy = dir.join("p.grd");
        std::fs::write(&policy, "guard /b allow tty else kill\n").expect("write");
        let path = policy.to_str().expect("UTF-8 path");
        assert_eq!(run_args(&["compile", path, "-o", "/dev/null"]), 0);
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata("/dev/null").expect("/dev/null");
        assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
        assert!(!Path::new("/dev/null.o.tmp").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn warnings_fail_only_when_denied_and_fmt_checks_layout() {
        let dir = std::env::temp_dir().join(format!("guardc-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let policy = dir.join("p.grd");
        let path = policy.to_str().expect("UTF-8 path");
        // W0001: `l` is never used.
        std::fs::write(&policy, "list l = [/a]\nguard /b allow tty else kill\n").expect("write");
        let json = ["--message-format", "json"];
        assert_eq!(run_args(&[&["check", path][..], &json].concat()), 0);
        assert_eq!(
            run_args(&[&["check", "--deny-warnings", path][..], &json].concat()),
            1
        );
        assert_eq!(run_args(&["fmt", "--check", path]), 0);
        std::fs::write(&policy, "guard  /b allow tty else kill").expect("write");
        assert_eq!(run_args(&["fmt", "--check", path]), 1);
        assert_eq!(run_args(&["fmt", "--write", path]), 0);
        assert_eq!(
            std::fs::read_to_string(&policy).expect("read"),
            "guard /b allow tty else kill\n"
        );
        std::fs::write(&policy, "guard /b allow").expect("write");
        assert_eq!(run_args(&["fmt", path]), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
