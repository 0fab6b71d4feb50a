//! `guardc test`: policy test cases, run on the compiled object itself.
//!
//! Each policy `NAME.grd` may have a sidecar `NAME.cases.toml` ([`file`]: the format). A case
//! describes a process tree, one operation and what must happen; [`run`] creates the tree in a
//! fresh simulated node (`guard_ebpf::sim::Machine`) where the object's own programs run on
//! every fork, exec and open, in a user-space BPF interpreter with the kernel mocked, so a
//! case checks the bytes the kernel will run, not a second model of the language.
//! [`explain`] (`guardc explain`) shows how the object judges one case, rule by rule.

pub mod explain;
pub mod fields;
pub mod file;
pub mod replay;
pub mod run;
pub mod scopes;

use std::io::Write;
use std::path::{Path, PathBuf};

use guard_ebpf::abi::Metadata;

/// The sidecar of a policy: `x.grd` -> `x.cases.toml`.
pub fn sidecar(policy: &Path) -> PathBuf {
    policy.with_extension("cases.toml")
}

/// The policies to test under `paths`: a directory gives every `*.grd` below it that has a
/// case file, a `.grd` file itself (its case file must exist), a `.cases.toml` file its policy.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
            found.retain(|g| sidecar(g).is_file());
            found.sort();
            if found.is_empty() {
                return Err(format!(
                    "no policy with a case file (`NAME.grd` next to `NAME.cases.toml`) under `{}`",
                    p.display()
                ));
            }
            out.extend(found);
        } else if let Some(stem) = p
            .to_str()
            .and_then(|s| s.strip_suffix(".cases.toml"))
            .map(|s| PathBuf::from(format!("{s}.grd")))
        {
            if !stem.is_file() {
                return Err(format!(
                    "`{}` has no policy `{}` next to it",
                    p.display(),
                    stem.display()
                ));
            }
            out.push(stem);
        } else if p.extension().is_some_and(|e| e == "grd") {
            if !sidecar(p).is_file() {
                return Err(format!(
                    "`{}` has no case file `{}`",
                    p.display(),
                    sidecar(p).display()
                ));
            }
            out.push(p.clone());
        } else {
            return Err(format!(
                "`{}`: give directories, `.grd` policies or `.cases.toml` case files",
                p.display()
            ));
        }
    }
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "grd") {
            out.push(path);
        }
    }
    Ok(())
}

/// `guardc explain`: the explanation of case `name` of `policy` (cases from `case_path`, or
/// the policy's sidecar).
pub fn explain_case(
    policy: &Path,
    name: &str,
    case_path: Option<&Path>,
    backend: guard_ebpf::abi::Backend,
    compile: impl FnOnce(&Path) -> Option<(Vec<u8>, Metadata)>,
) -> Result<String, String> {
    let case_path = case_path.map_or_else(|| sidecar(policy), Path::to_path_buf);
    let text = std::fs::read_to_string(&case_path)
        .map_err(|e| format!("cannot read `{}`: {e}", case_path.display()))?;
    let cases = file::parse(&text).map_err(|e| {
        format!(
            "{}:{}:{}: {}",
            case_path.display(),
            e.line,
            e.column,
            e.message
        )
    })?;
    let case = cases.cases.iter().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<String> = cases
            .cases
            .iter()
            .map(|c| format!("  {}", c.name))
            .collect();
        format!(
            "`{}` has no case named `{name}`; its cases:\n{}",
            case_path.display(),
            names.join("\n")
        )
    })?;
    let (object, meta) = compile(policy).ok_or("the policy does not compile")?;
    let object = run::prepare(&object, &meta, &cases)?;
    let shown = policy.display().to_string();
    let p = run::Policy {
        object: &object,
        meta: &meta,
        file: &shown,
    };
    explain::explain(&p, &cases, case, &case_path.display().to_string(), backend)
}

/// `guardc test --replay RECORD TARGET`: `target` is a policy (compiled with `compile`) or an
/// object `guardc compile` wrote.
pub fn replay_file(
    record: &Path,
    target: &Path,
    compile: impl FnOnce(&Path) -> Option<(Vec<u8>, Metadata)>,
    out: &mut impl Write,
) -> Result<replay::ReplaySummary, String> {
    let text = std::fs::read_to_string(record)
        .map_err(|e| format!("cannot read the record `{}`: {e}", record.display()))?;
    let records =
        guard_ebpf::record::parse(&text).map_err(|e| format!("{}:{e}", record.display()))?;
    let (object, meta, shown) = if target.extension().is_some_and(|e| e == "grd") {
        let (o, m) = compile(target).ok_or("the policy does not compile")?;
        (o, m, target.display().to_string())
    } else {
        let bytes = std::fs::read(target)
            .map_err(|e| format!("cannot read `{}`: {e}", target.display()))?;
        let meta = object_metadata(&bytes)
            .map_err(|e| format!("`{}` is not a usable guard object: {e}", target.display()))?;
        let shown = meta.source.clone();
        (bytes, meta, shown)
    };
    let policy = run::Policy {
        object: &object,
        meta: &meta,
        file: &shown,
    };
    replay::replay(&policy, &meta, &records, &record.display().to_string(), out)
        .map_err(|e| format!("writing the report: {e}"))
}

/// The metadata of an object `guardc compile` wrote, refusing another format version.
fn object_metadata(bytes: &[u8]) -> Result<Metadata, String> {
    use guard_ebpf::elf::{MetadataError, decode_metadata};
    decode_metadata(bytes).map_err(|e| match e {
        MetadataError::Version { found, .. } => format!(
            "it is in object format {}, and this guardc reads format {}; recompile the policy",
            found.map_or("(none)".into(), |v| v.to_string()),
            guard_ebpf::abi::FORMAT_VERSION
        ),
        other => other.to_string(),
    })
}

/// Counts of a test run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// Runs the cases of each policy, printing a line per case (and what went wrong under a
/// failure) to `out`. `compile` builds a policy's object in memory (reporting its diagnostics
/// itself) or returns `None`.
pub fn run_all(
    policies: &[PathBuf],
    mut compile: impl FnMut(&Path) -> Option<(Vec<u8>, Metadata)>,
    out: &mut impl Write,
) -> std::io::Result<Summary> {
    let mut sum = Summary::default();
    for policy in policies {
        let shown = policy.display().to_string();
        let case_path = sidecar(policy);
        let cases = match std::fs::read_to_string(&case_path) {
            Ok(text) => file::parse(&text).map_err(|e| {
                format!(
                    "{}:{}:{}: {}",
                    case_path.display(),
                    e.line,
                    e.column,
                    e.message
                )
            }),
            Err(e) => Err(format!("cannot read `{}`: {e}", case_path.display())),
        };
        let cases = match cases {
            Ok(c) => c,
            Err(e) => {
                writeln!(out, "FAILED {shown}: the case file\n    {e}")?;
                sum.failed += 1;
                continue;
            }
        };
        let Some((object, meta)) = compile(policy) else {
            writeln!(
                out,
                "FAILED {shown}: the policy does not compile ({} case(s) not run)",
                cases.cases.len()
            )?;
            sum.failed += cases.cases.len();
            continue;
        };
        let object = match run::prepare(&object, &meta, &cases) {
            Ok(o) => o,
            Err(e) => {
                writeln!(
                    out,
                    "FAILED {shown}: {e} ({} case(s) not run)",
                    cases.cases.len()
                )?;
                sum.failed += cases.cases.len();
                continue;
            }
        };
        let p = run::Policy {
            object: &object,
            meta: &meta,
            file: &shown,
        };
        for case in &cases.cases {
            match run::run_case(&p, &cases, case) {
                Ok(()) => {
                    writeln!(out, "ok     {shown}: {}", case.name)?;
                    sum.passed += 1;
                }
                Err(why) => {
                    writeln!(
                        out,
                        "FAILED {shown}: {} ({}:{})\n{why}",
                        case.name,
                        case_path.display(),
                        case.line
                    )?;
                    sum.failed += 1;
                }
            }
        }
    }
    writeln!(out, "{} passed, {} failed", sum.passed, sum.failed)?;
    Ok(sum)
}
