//! The checked form of a policy: what the front end hands to later passes.
//!
//! Everything here has been validated: names are resolved into enums,
//! patterns are well-formed, limits are respected. Later passes may rely on
//! that and need no error paths for user mistakes.

use crate::diag::Diagnostic;
use crate::span::Span;
pub use guard_ebpf::abi::Scope;

/// A checked policy. INVARIANT: every [`Span`] in it points into the
/// checked file itself: where the thing is written if it is written there,
/// otherwise (a list item or macro from an imported module) the place in
/// the checked file that refers to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// Warnings found while checking (severity [`crate::diag::Severity::Warning`]);
    /// they do not stop compilation unless the user asks for that.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The name given with `rule "NAME"`, or by default `"guard "` followed
    /// by the operation keyword (if written) and the objects' source text
    /// joined by spaces, e.g. `guard read /mnt/secrets/*`. Shown in alerts
    /// as `rule.name`.
    pub name: String,
    /// The rule from `guard` to its last token.
    pub span: Span,
    /// 1-based position of the `guard` keyword.
    pub line: u32,
    pub column: u32,
    pub operation: Operation,
    /// Lists expanded, in order, duplicates removed. INVARIANT: non-empty.
    pub objects: Vec<Object>,
    /// Macros expanded. INVARIANT: at most [`MAX_SUBJECT_NODES`] nodes.
    pub subject: Subject,
    pub enforce: Enforce,
    /// INVARIANT: if `enforce` is [`Enforce::None`] the rule was written
    /// with an explicit `alert` clause (`alert.span` is `Some`).
    pub alert: Alert,
    /// Duplicates removed, order kept; each non-empty.
    pub tags: Vec<String>,
}

/// What a rule guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A file is opened, in any mode (the default).
    Open,
    /// A file is opened for reading.
    Read,
    /// A file is opened for writing, including creation and truncation.
    Write,
    /// A program is executed.
    Exec,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Open => "open",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Exec => "exec",
        }
    }
}

/// A validated path pattern (Path-mode glob): absolute, no empty, `.` or
/// `..` components, `**` only as a whole component, no trailing `/`, at
/// most [`MAX_PATTERN_LEN`] bytes, no NUL. A program name `"curl"` of an
/// `exec` rule is already the pattern `/**/curl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub pattern: String,
    pub span: Span,
}

/// `PATH_MAX` (4096) minus the terminating NUL.
pub const MAX_PATTERN_LEN: usize = 4095;

/// INVARIANT: must match the size of the command-line buffer the runtime
/// compares against (one byte is kept for the terminating NUL).
pub const MAX_CMDLINE_LEN: usize = 255;

/// The kernel's `TASK_COMM_LEN` (16) minus the terminating NUL: longer
/// process names are truncated, so a longer `name()` could never match.
pub const MAX_PROCESS_NAME_LEN: usize = 15;

/// The largest `uid()`: `u32::MAX` is `(uid_t)-1`, "no user".
pub const MAX_UID: u32 = u32::MAX - 1;

/// The most nodes (atoms, `and`, `or`, `not`) a rule's subject may have
/// once macros are expanded. INVARIANT: bounds the depth of every
/// [`Subject`], and so the recursion depth of every pass over subjects
/// (lowering, printing, dropping).
pub const MAX_SUBJECT_NODES: usize = 1024;

/// A condition on the process performing the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// `ancestor(which, "cmdline")`: the command line (argv joined by
    /// single spaces) of the pid-namespace init (`pid1`), or of the process
    /// itself or any ancestor (`any`), is exactly `cmdline`.
    Ancestor {
        which: Which,
        cmdline: String,
        span: Span,
    },
    /// `ancestor(which, exe(PATTERN, …))`: the executable of the pid-namespace init (`pid1`,
    /// if the process is that init or descends from it), or of the process itself or any
    /// ancestor (`any`), matched one of these path patterns when it was executed. Patterns as
    /// in [`Subject::Exe`].
    AncestorExe {
        which: Which,
        patterns: Vec<String>,
        span: Span,
    },
    /// `image(which, "cmdline")`: the process runs that process's image: it
    /// is that process, or was forked from it without an exec since.
    Image {
        which: Which,
        cmdline: String,
        span: Span,
    },
    /// `cmdline("glob")`: the process's own command line matches a
    /// Text-mode glob (`*`, `?`, `\x`). At most [`MAX_CMDLINE_LEN`] bytes,
    /// non-empty, no unfinished escape.
    Cmdline {
        pattern: String,
        span: Span,
    },
    /// `name(…)`: the process name is one of these (each 1..=15 bytes, no
    /// `/`; deduplicated, non-empty).
    Name {
        names: Vec<String>,
        span: Span,
    },
    /// `exe(…)`: the executable's resolved path matches one of these path
    /// patterns (validated like [`Object::pattern`]; deduplicated,
    /// non-empty).
    Exe {
        patterns: Vec<String>,
        span: Span,
    },
    /// `uid(n)`: the real uid is `n` (at most [`MAX_UID`]).
    Uid {
        uid: u32,
        span: Span,
    },
    /// `tty`: the process has a controlling terminal.
    Tty {
        span: Span,
    },
    /// `entered`: the process was entered into its pid namespace from outside (`setns`, as
    /// `kubectl exec` and `nsenter` do), or descends from such a process in that namespace.
    Entered {
        span: Span,
    },
    /// `nobody`: holds for no process (for rules that allow no one).
    Nobody {
        span: Span,
    },
    /// `user("name")`: the real uid is that user's, looked up in the node's user database when
    /// the policy is loaded (names are node-local, uids are what the kernel compares).
    User {
        name: String,
        span: Span,
    },
    /// Where the process runs: `cgroup("/path")`, `container(…)`, `k8s_namespace(…)`,
    /// `pod_label(…)`. The runtime resolves each to the cgroups it covers on the node.
    Scope {
        scope: Scope,
        span: Span,
    },
    And(Box<Subject>, Box<Subject>),
    Or(Box<Subject>, Box<Subject>),
    Not(Box<Subject>),
}

/// Which process `ancestor` and `image` look at: the pid namespace's init,
/// or the process itself and any of its ancestors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Which {
    /// The container's (or system's) first process.
    Pid1,
    /// Any process on the parent chain.
    Any,
}

impl Which {
    pub const ALL: [Which; 2] = [Which::Pid1, Which::Any];

    pub fn as_str(self) -> &'static str {
        match self {
            Which::Pid1 => "pid1",
            Which::Any => "any",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Enforce {
    Kill,
    Deny,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Defaults to `Critical` for kill/deny rules, `Warning` for alert-only
    /// rules.
    pub priority: Priority,
    /// The message as written (escapes decoded), with `%field` references
    /// and `%%` left in place; `None` means the runtime's default message.
    pub message: Option<String>,
    /// The same message split into literal text and resolved fields (`%%`
    /// already turned into `%`), so the runtime need not parse it again.
    pub template: Option<Vec<MessagePart>>,
    /// The `alert` clause, if the rule has one.
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessagePart {
    Text(String),
    Field(Field),
}

/// Falco's priorities, most to least severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// Falco's spelling, as it appears in alert output.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }

    /// Parses a priority name case-insensitively; `info` is accepted as
    /// Falco accepts it.
    pub fn from_name(name: &str) -> Option<Priority> {
        if name.eq_ignore_ascii_case("info") {
            return Some(Priority::Informational);
        }
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }
}

/// The fields an alert message may reference as `%name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    EvtTime,
    EvtType,
    ProcName,
    ProcCmdline,
    ProcPid,
    ProcPpid,
    ProcExepath,
    /// The parent's process name.
    ProcPname,
    ThreadTid,
    UserName,
    UserUid,
    GroupGid,
    FdName,
    /// `host` for a process in no container.
    ContainerId,
    ContainerName,
    ContainerImageRepository,
    ContainerImageTag,
    K8sPodName,
    K8sNsName,
    RuleName,
    /// What guard did: `killed`, `denied`, `alerted`, or `kill failed`.
    GuardAction,
}

impl Field {
    /// INVARIANT: the runtime's alert formatter handles every field listed
    /// here.
    pub const ALL: [Field; 21] = [
        Field::EvtTime,
        Field::EvtType,
        Field::ProcName,
        Field::ProcCmdline,
        Field::ProcPid,
        Field::ProcPpid,
        Field::ProcExepath,
        Field::ProcPname,
        Field::ThreadTid,
        Field::UserName,
        Field::UserUid,
        Field::GroupGid,
        Field::FdName,
        Field::ContainerId,
        Field::ContainerName,
        Field::ContainerImageRepository,
        Field::ContainerImageTag,
        Field::K8sPodName,
        Field::K8sNsName,
        Field::RuleName,
        Field::GuardAction,
    ];

    /// The Falco field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::EvtTime => "evt.time",
            Field::EvtType => "evt.type",
            Field::ProcName => "proc.name",
            Field::ProcCmdline => "proc.cmdline",
            Field::ProcPid => "proc.pid",
            Field::ProcPpid => "proc.ppid",
            Field::ProcExepath => "proc.exepath",
            Field::ProcPname => "proc.pname",
            Field::ThreadTid => "thread.tid",
            Field::UserName => "user.name",
            Field::UserUid => "user.uid",
            Field::GroupGid => "group.gid",
            Field::FdName => "fd.name",
            Field::ContainerId => "container.id",
            Field::ContainerName => "container.name",
            Field::ContainerImageRepository => "container.image.repository",
            Field::ContainerImageTag => "container.image.tag",
            Field::K8sPodName => "k8s.pod.name",
            Field::K8sNsName => "k8s.ns.name",
            Field::RuleName => "rule.name",
            Field::GuardAction => "guard.action",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// Prints a subject in guard syntax, with only the parentheses precedence
/// requires (`or` < `and` < `not`), e.g. for rule descriptions and tests.
impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f, 0)
    }
}

impl Subject {
    /// The number of nodes (atoms and operators).
    pub fn size(&self) -> usize {
        match self {
            Subject::And(a, b) | Subject::Or(a, b) => 1 + a.size() + b.size(),
            Subject::Not(a) => 1 + a.size(),
            _ => 1,
        }
    }

    /// Precedence levels: 0 = `or`, 1 = `and`, 2 = `not` / atom.
    fn write(&self, f: &mut std::fmt::Formatter<'_>, min: u8) -> std::fmt::Result {
        let (level, open) = match self {
            Subject::Or(..) => (0, min > 0),
            Subject::And(..) => (1, min > 1),
            _ => (2, false),
        };
        if open {
            f.write_str("(")?;
        }
        let quoted = |items: &[String]| items.iter().map(|s| quote(s)).collect::<Vec<_>>();
        match self {
            Subject::Ancestor { which, cmdline, .. } => {
                write!(f, "ancestor({}, {})", which.as_str(), quote(cmdline))?;
            }
            Subject::Image { which, cmdline, .. } => {
                write!(f, "image({}, {})", which.as_str(), quote(cmdline))?;
            }
            Subject::AncestorExe {
                which, patterns, ..
            } => {
                let patterns = quoted(patterns).join(", ");
                write!(f, "ancestor({}, exe({patterns}))", which.as_str())?;
            }
            Subject::Cmdline { pattern, .. } => write!(f, "cmdline({})", quote(pattern))?,
            Subject::Name { names, .. } => write!(f, "name({})", quoted(names).join(", "))?,
            Subject::Exe { patterns, .. } => {
                write!(f, "exe({})", quoted(patterns).join(", "))?;
            }
            Subject::Uid { uid, .. } => write!(f, "uid({uid})")?,
            Subject::Tty { .. } => f.write_str("tty")?,
            Subject::Entered { .. } => f.write_str("entered")?,
            Subject::Nobody { .. } => f.write_str("nobody")?,
            Subject::User { name, .. } => write!(f, "user({})", quote(name))?,
            Subject::Scope { scope, .. } => match scope {
                Scope::Cgroup { path } => write!(f, "cgroup({})", quote(path))?,
                Scope::Container { names } => {
                    write!(f, "container({})", quoted(names).join(", "))?;
                }
                Scope::K8sNamespace { names } => {
                    write!(f, "k8s_namespace({})", quoted(names).join(", "))?;
                }
                Scope::PodLabel { labels } => {
                    let labels: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "pod_label({})", quoted(&labels).join(", "))?;
                }
            },
            // Left-associative: the right operand needs one level more.
            Subject::Or(a, b) | Subject::And(a, b) => {
                a.write(f, level)?;
                f.write_str(if level == 0 { " or " } else { " and " })?;
                b.write(f, level + 1)?;
            }
            Subject::Not(inner) => {
                f.write_str("not ")?;
                inner.write(f, 2)?;
            }
        }
        if open {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A string literal in guard syntax (the inverse of the lexer's escapes).
pub fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ancestor(cmdline: &str) -> Box<Subject> {
        Box::new(Subject::Ancestor {
            which: Which::Any,
            cmdline: cmdline.to_string(),
            span: Span::default(),
        })
    }

    #[test]
    fn subjects_print_with_minimal_parentheses() {
        let or = Subject::Or(ancestor("a"), ancestor("b\""));
        let and = Subject::And(Box::new(or), Box::new(Subject::Not(ancestor("c"))));
        assert_eq!(
            and.to_string(),
            r#"(ancestor(any, "a") or ancestor(any, "b\"")) and not ancestor(any, "c")"#
        );
        let nested = Subject::Or(
            ancestor("a"),
            Box::new(Subject::Or(ancestor("b"), ancestor("c"))),
        );
        assert_eq!(
            nested.to_string(),
            r#"ancestor(any, "a") or (ancestor(any, "b") or ancestor(any, "c"))"#
        );
        assert_eq!(nested.size(), 5);
    }

    #[test]
    fn every_atom_prints_as_written() {
        let span = Span::default();
        let atoms = [
            Subject::Image {
                which: Which::Pid1,
                cmdline: "x".into(),
                span,
            },
            Subject::Cmdline {
                pattern: "python *".into(),
                span,
            },
            Subject::Name {
                names: vec!["sh".into(), "bash".into()],
                span,
            },
            Subject::Exe {
                patterns: vec!["/usr/bin/*".into()],
                span,
            },
            Subject::AncestorExe {
                which: Which::Any,
                patterns: vec!["/usr/sbin/sshd".into(), "/opt/*".into()],
                span,
            },
            Subject::Uid { uid: 0, span },
            Subject::Tty { span },
        ];
        let printed: Vec<String> = atoms.iter().map(Subject::to_string).collect();
        assert_eq!(
            printed,
            [
                r#"image(pid1, "x")"#,
                r#"cmdline("python *")"#,
                r#"name("sh", "bash")"#,
                r#"exe("/usr/bin/*")"#,
                r#"ancestor(any, exe("/usr/sbin/sshd", "/opt/*"))"#,
                "uid(0)",
                "tty"
            ]
        );
    }
}
