//! The case file: `NAME.cases.toml` next to `NAME.grd`, read with serde and checked into
//! [`Case`]s. Every error carries the line and column of what is wrong (toml's spans).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use guard_ebpf::abi::Backend;
use guard_ebpf::sim::machine::parse_shebang;

use super::scopes::{Container, Placement};
use crate::span::LineIndex;

/// An error in a case file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFileError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Users known without a `[users]` table.
const BUILTIN_USERS: [(&str, u32); 2] = [("root", 0), ("nobody", 65534)];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDe {
    /// The host's init command line (default `/sbin/init`).
    init: Option<Spanned<Cmdline>>,
    /// Its executable (default: as for a process).
    init_exe: Option<Spanned<String>>,
    #[serde(default)]
    users: BTreeMap<String, u32>,
    #[serde(default)]
    case: Vec<Spanned<CaseDe>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Cmdline {
    Words(String),
    Argv(Vec<String>),
}

impl Cmdline {
    fn argv(&self) -> Vec<String> {
        match self {
            Cmdline::Words(s) => s.split_whitespace().map(str::to_string).collect(),
            Cmdline::Argv(v) => v.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDe {
    name: String,
    #[serde(default)]
    process: Vec<Spanned<ProcessDe>>,
    open: Option<Spanned<OpenDe>>,
    exec: Option<Spanned<ExecDe>>,
    memory: Option<Spanned<MemoryDe>>,
    expect: Spanned<String>,
    alert: Option<Vec<Spanned<AlertDe>>>,
    backend: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessDe {
    name: Spanned<String>,
    cmdline: Option<Spanned<Cmdline>>,
    exe: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
    uid: Option<u32>,
    user: Option<Spanned<String>>,
    tty: Option<bool>,
    parent: Option<Spanned<String>>,
    fork_of: Option<Spanned<String>>,
    entered: Option<Spanned<String>>,
    pid1: Option<bool>,
    cgroup: Option<Spanned<String>>,
    container: Option<ContainerDe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerDe {
    id: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenDe {
    process: Spanned<String>,
    path: Spanned<String>,
    mode: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecDe {
    process: Spanned<String>,
    cmdline: Spanned<Cmdline>,
    exe: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryDe {
    process: Spanned<String>,
    target: Spanned<String>,
    mode: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertDe {
    rule: String,
    priority: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, toml::Value>,
}

/// How a process came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Started by the host's init (fork and exec): a process of the node.
    Host,
    /// Forked by process `.0` (an index into [`Case::processes`]), then exec'd.
    Exec(usize),
    /// Forked by process `.0`, no exec: the same image.
    Fork(usize),
    /// Brought into process `.0`'s pid namespace from outside (`kubectl exec`, `nsenter`),
    /// then exec'd.
    Entered(usize),
    /// Pid 1 of a new pid namespace, started by process `.0` (`None`: by the host's init).
    Pid1(Option<usize>),
}

#[derive(Clone, Debug)]
pub struct Process {
    pub name: String,
    pub origin: Origin,
    /// Empty for a fork without exec.
    pub argv: Vec<String>,
    /// The executable file (symbolic links resolved): `exe`, else `argv[0]` if absolute,
    /// else `/usr/bin/argv[0]`.
    pub exe: String,
    /// The first line of `exe` when it is a `#!` script.
    pub script: Option<String>,
    /// `None`: as its creator.
    pub uid: Option<u32>,
    /// `None`: as its creator.
    pub tty: Option<bool>,
    /// Its cgroup and container; `None`: its creator's (a process entered into another's
    /// namespace joins that one's container, as `kubectl exec` does; the node's init and the
    /// processes it starts are in the root cgroup).
    pub placement: Option<Placement>,
    pub line: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    Write,
    ReadWrite,
}

#[derive(Clone, Debug)]
pub enum Operation {
    Open {
        process: usize,
        path: String,
        mode: OpenMode,
    },
    Exec {
        process: usize,
        argv: Vec<String>,
        exe: String,
        /// The first line of `exe` when it is a `#!` script.
        script: Option<String>,
    },
    /// Opening `/proc/PID/mem` of `target`.
    Memory {
        process: usize,
        target: usize,
        mode: OpenMode,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Alert,
    Deny,
    Kill,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Alert => "alert",
            Verdict::Deny => "deny",
            Verdict::Kill => "kill",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExpectedAlert {
    pub rule: String,
    pub priority: Option<String>,
    /// Field name and the value it must render to.
    pub fields: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub line: u32,
    pub processes: Vec<Process>,
    pub operation: Operation,
    pub expect: Verdict,
    /// `Some`: exactly these alerts, in order.
    pub alerts: Option<Vec<ExpectedAlert>>,
    /// `Some`: the case runs on this backend only (what the backends can see differs: the
    /// tracepoint backend judges a script's exec as its interpreter only).
    pub backend: Option<Backend>,
}

#[derive(Clone, Debug)]
pub struct CaseFile {
    pub init: Vec<String>,
    pub init_exe: String,
    pub users: BTreeMap<String, u32>,
    pub cases: Vec<Case>,
}

impl CaseFile {
    /// The uid of user `name` (the `[users]` table, then root and nobody).
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.users.get(name).copied().or_else(|| {
            BUILTIN_USERS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, u)| *u)
        })
    }

    /// The user name of `uid` (the `[users]` table, then root and nobody).
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.users
            .iter()
            .find(|(_, u)| **u == uid)
            .map(|(n, _)| n.as_str())
            .or_else(|| {
                BUILTIN_USERS
                    .iter()
                    .find(|(_, u)| *u == uid)
                    .map(|(n, _)| *n)
            })
    }
}

struct Ctx<'a> {
    index: LineIndex<'a>,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> CaseFileError {
        let (line, column) = self.index.line_column(span.start);
        CaseFileError {
            line,
            column,
            message: message.into(),
        }
    }

    fn line(&self, span: &Range<usize>) -> u32 {
        self.index.line_column(span.start).0
    }
}

/// Parses and checks a case file.
pub fn parse(source: &str) -> Result<CaseFile, CaseFileError> {
    let cx = Ctx {
        index: LineIndex::new(source),
    };
    let file: FileDe = toml::from_str(source)
        .map_err(|e| cx.err(e.span().unwrap_or(0..0), e.message().trim_end().to_string()))?;
    let init = match &file.init {
        Some(c) if c.get_ref().argv().is_empty() => {
            return Err(cx.err(c.span(), "the init's command line is empty"));
        }
        Some(c) => c.get_ref().argv(),
        None => vec!["/sbin/init".to_string()],
    };
    let init_exe = exe_of(&cx, &init, file.init_exe.as_ref())?;
    let mut users: BTreeMap<String, u32> = BUILTIN_USERS
        .iter()
        .map(|(n, u)| (n.to_string(), *u))
        .collect();
    users.extend(file.users.clone());
    if file.case.is_empty() {
        return Err(cx.err(0..0, "no `[[case]]` in the file"));
    }
    let mut cases = Vec::new();
    for c in &file.case {
        cases.push(case(&cx, c, &users)?);
    }
    Ok(CaseFile {
        init,
        init_exe,
        users: file.users,
        cases,
    })
}

fn find(cx: &Ctx, procs: &[Process], name: &Spanned<String>) -> Result<usize, CaseFileError> {
    procs
        .iter()
        .position(|p| p.name == *name.get_ref())
        .ok_or_else(|| {
            cx.err(
                name.span(),
                format!(
                    "no process `{}` before this point (processes are created in the order listed)",
                    name.get_ref()
                ),
            )
        })
}

/// The executable a command line runs: `exe` if given (it must be an absolute path), else
/// `argv[0]` if absolute, else `/usr/bin/argv[0]`.
fn exe_of(
    cx: &Ctx,
    argv: &[String],
    exe: Option<&Spanned<String>>,
) -> Result<String, CaseFileError> {
    Ok(match (exe, argv.first()) {
        (Some(e), _) => absolute(cx, e)?,
        (None, Some(a)) if a.starts_with('/') => a.clone(),
        (None, Some(a)) => format!("/usr/bin/{a}"),
        (None, None) => String::new(),
    })
}

/// A `#!` line, as the kernel would accept it.
fn script(cx: &Ctx, line: Option<&Spanned<String>>) -> Result<Option<String>, CaseFileError> {
    let Some(line) = line else {
        return Ok(None);
    };
    match parse_shebang(line.get_ref()) {
        Some((interp, _)) if interp.starts_with('/') => Ok(Some(line.get_ref().clone())),
        _ => Err(cx.err(
            line.span(),
            "a script's first line: `#!` and the interpreter's absolute path, e.g. `#!/bin/sh -e`",
        )),
    }
}

fn mode(cx: &Ctx, m: &Spanned<String>) -> Result<OpenMode, CaseFileError> {
    match m.get_ref().as_str() {
        "read" => Ok(OpenMode::Read),
        "write" => Ok(OpenMode::Write),
        "read-write" => Ok(OpenMode::ReadWrite),
        other => Err(cx.err(
            m.span(),
            format!("mode `{other}`: expected `read`, `write` or `read-write`"),
        )),
    }
}

fn absolute(cx: &Ctx, p: &Spanned<String>) -> Result<String, CaseFileError> {
    let s = p.get_ref();
    if !s.starts_with('/') || s.split('/').skip(1).any(|c| c.is_empty() || c.len() > 255) {
        return Err(cx.err(
            p.span(),
            format!("`{s}` is not an absolute path of non-empty components"),
        ));
    }
    Ok(s.clone())
}

/// One `[[case.process]]` entry, checked against the processes listed before it.
fn process(
    cx: &Ctx,
    p: &Spanned<ProcessDe>,
    procs: &[Process],
    users: &BTreeMap<String, u32>,
) -> Result<Process, CaseFileError> {
    let pspan = p.span();
    let p = p.get_ref();
    if procs.iter().any(|q| q.name == *p.name.get_ref()) {
        return Err(cx.err(
            p.name.span(),
            format!("a second process named `{}`", p.name.get_ref()),
        ));
    }
    let origins = [
        p.parent.is_some() && p.pid1 != Some(true),
        p.fork_of.is_some(),
        p.entered.is_some(),
        p.pid1 == Some(true),
    ];
    if origins.iter().filter(|&&o| o).count() > 1 {
        return Err(cx.err(
            pspan,
            "a process has one origin: `parent` (fork and exec), `fork_of`, `entered` or \
             `pid1` (with an optional `parent`)",
        ));
    }
    let origin = if p.pid1 == Some(true) {
        Origin::Pid1(p.parent.as_ref().map(|n| find(cx, procs, n)).transpose()?)
    } else if let Some(n) = &p.fork_of {
        Origin::Fork(find(cx, procs, n)?)
    } else if let Some(n) = &p.entered {
        Origin::Entered(find(cx, procs, n)?)
    } else if let Some(n) = &p.parent {
        Origin::Exec(find(cx, procs, n)?)
    } else {
        Origin::Host
    };
    let argv = p
        .cmdline
        .as_ref()
        .map(|c| c.get_ref().argv())
        .unwrap_or_default();
    match (&origin, &p.cmdline) {
        (Origin::Fork(_), Some(c)) => {
            return Err(cx.err(
                c.span(),
                "a process made by `fork_of` runs its parent's image: no `cmdline` (an \
                 `[case.exec]` can exec one)",
            ));
        }
        (Origin::Fork(_), None) => {}
        (_, Some(c)) if argv.is_empty() => {
            return Err(cx.err(c.span(), "an empty command line"));
        }
        (_, None) => {
            return Err(cx.err(
                p.name.span(),
                format!("process `{}` needs a `cmdline`", p.name.get_ref()),
            ));
        }
        _ => {}
    }
    let uid = match (&p.uid, &p.user) {
        (Some(_), Some(u)) => {
            return Err(cx.err(u.span(), "give `uid` or `user`, not both"));
        }
        (Some(u), None) => Some(*u),
        (None, Some(u)) => Some(*users.get(u.get_ref()).ok_or_else(|| {
            cx.err(
                u.span(),
                format!(
                    "unknown user `{}`: add it to the file's `[users]` table or give `uid`",
                    u.get_ref()
                ),
            )
        })?),
        (None, None) => None,
    };
    let exe = exe_of(cx, &argv, p.exe.as_ref())?;
    let script = script(cx, p.script.as_ref())?;
    let container = p.container.as_ref().map(|c| Container {
        id: c.id.clone().unwrap_or_default(),
        name: c.name.clone(),
        namespace: c.namespace.clone(),
        labels: c.labels.clone(),
    });
    let placement = match (&p.cgroup, container) {
        (None, None) => None,
        (Some(g), container) => {
            let path = g.get_ref();
            if !path.starts_with('/') {
                return Err(cx.err(g.span(), format!("cgroup `{path}` is not a path from `/`")));
            }
            Some(Placement {
                cgroup: path.trim_end_matches('/').to_string(),
                container,
            })
        }
        // A container of its own cgroup, named after what identifies it.
        (None, Some(c)) => Some(Placement {
            cgroup: format!(
                "/containers/{}",
                c.name.clone().unwrap_or_else(|| c.id.clone())
            ),
            container: Some(c),
        }),
    };
    Ok(Process {
        name: p.name.get_ref().clone(),
        origin,
        exe,
        script,
        argv,
        uid,
        tty: p.tty,
        placement,
        line: cx.line(&pspan),
    })
}

fn case(
    cx: &Ctx,
    c: &Spanned<CaseDe>,
    users: &BTreeMap<String, u32>,
) -> Result<Case, CaseFileError> {
    let span = c.span();
    let c = c.get_ref();
    let mut procs: Vec<Process> = Vec::new();
    for p in &c.process {
        let p = process(cx, p, &procs, users)?;
        procs.push(p);
    }
    let ops = [c.open.is_some(), c.exec.is_some(), c.memory.is_some()];
    let operation = match (&c.open, &c.exec, &c.memory) {
        _ if ops.iter().filter(|&&o| o).count() != 1 => {
            return Err(cx.err(
                span,
                format!(
                    "case `{}` needs exactly one operation: `[case.open]`, `[case.exec]` or \
                     `[case.memory]`",
                    c.name
                ),
            ));
        }
        (Some(o), _, _) => {
            let o = o.get_ref();
            Operation::Open {
                process: find(cx, &procs, &o.process)?,
                path: absolute(cx, &o.path)?,
                mode: mode(cx, &o.mode)?,
            }
        }
        (_, Some(e), _) => {
            let e = e.get_ref();
            let argv = e.cmdline.get_ref().argv();
            if argv.is_empty() {
                return Err(cx.err(e.cmdline.span(), "an empty command line"));
            }
            Operation::Exec {
                process: find(cx, &procs, &e.process)?,
                exe: exe_of(cx, &argv, e.exe.as_ref())?,
                script: script(cx, e.script.as_ref())?,
                argv,
            }
        }
        (_, _, Some(m)) => {
            let m = m.get_ref();
            Operation::Memory {
                process: find(cx, &procs, &m.process)?,
                target: find(cx, &procs, &m.target)?,
                mode: mode(cx, &m.mode)?,
            }
        }
        _ => unreachable!("exactly one operation was checked above"),
    };
    let expect = match c.expect.get_ref().as_str() {
        "allow" => Verdict::Allow,
        "alert" => Verdict::Alert,
        "deny" => Verdict::Deny,
        "kill" => Verdict::Kill,
        other => {
            return Err(cx.err(
                c.expect.span(),
                format!("expect `{other}`: expected `allow`, `alert`, `deny` or `kill`"),
            ));
        }
    };
    let alerts = match &c.alert {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for a in list {
                let aspan = a.span();
                let a = a.get_ref();
                let mut fields = Vec::new();
                for (k, v) in &a.fields {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        _ => {
                            return Err(cx.err(
                                aspan,
                                format!("field `{k}`: give a string, an integer or a boolean"),
                            ));
                        }
                    };
                    fields.push((k.clone(), v));
                }
                out.push(ExpectedAlert {
                    rule: a.rule.clone(),
                    priority: a.priority.clone(),
                    fields,
                });
            }
            Some(out)
        }
    };
    if expect == Verdict::Allow && alerts.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(cx.err(
            c.expect.span(),
            "`allow` means no alert; an operation allowed with an alert is `alert`",
        ));
    }
    let backend = match &c.backend {
        None => None,
        Some(b) => Some(match b.get_ref().as_str() {
            "tracepoint" => Backend::Tracepoint,
            "lsm" => Backend::Lsm,
            other => {
                return Err(cx.err(
                    b.span(),
                    format!("backend `{other}`: expected `tracepoint` or `lsm`"),
                ));
            }
        }),
    };
    Ok(Case {
        backend,
        name: c.name.clone(),
        line: cx.line(&span),
        processes: procs,
        operation,
        expect,
        alerts,
    })
}

#[cfg(test)]
mod tests;
