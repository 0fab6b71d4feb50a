//! Hover and completion text for what the language builds in: functions, built-in conditions,
//! `ancestor`'s selectors, alert fields, priorities and keywords. Condensed from the book's
//! language reference (`book/src/language.md`) and alerts chapter; the tests below keep the
//! tables complete as the checker's own lists grow.

use crate::checked::{Field, Priority};

/// A condition function: how it is called, and what it tests.
pub fn function(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "ancestor" => (
            "ancestor(pid1 | any, \"CMDLINE\" | exe(PATTERN | LIST, ...))",
            "Holds for a process started with exactly this command line (argv joined by single \
             spaces, at most 255 bytes), or descending from one; with `exe(...)`, started from \
             an executable whose resolved path matches, or descending from one. `pid1`: that \
             process is PID 1 of the process's pid namespace (a container's first process), so \
             a process that enters the container from outside (`kubectl exec`, `nsenter`) never \
             satisfies it. `any`: any ancestor, or the process itself, regardless of namespaces.",
        ),
        "image" => (
            "image(pid1 | any, \"CMDLINE\")",
            "Like `ancestor`, but stricter: holds for that process and for children it forks \
             *without* exec (a pre-forking server's workers), which run the same program. A \
             shell the application starts is not its image.",
        ),
        "cmdline" => (
            "cmdline(\"GLOB\")",
            "The process's own command line matches the glob: `*` any run of characters \
             (spaces and `/` included), `?` one character, `\\x` the character `x`. Whoever \
             starts a program chooses its command line: combine with `ancestor` or `image`.",
        ),
        "name" => (
            "name(\"NAME\" | LIST, ...)",
            "The process name (the kernel's `comm`, at most 15 bytes: the file name the program \
             was started under) is one of these. A process can change its own name: this \
             describes a process rather than proving what it is.",
        ),
        "exe" => (
            "exe(PATTERN | LIST, ...)",
            "The resolved path of the program the process runs matches one of these path \
             patterns, quoted or not.",
        ),
        "uid" => (
            "uid(N)",
            "The process's real user id is `N` (0 to 4294967294).",
        ),
        "user" => (
            "user(\"NAME\" | LIST, ...)",
            "The process's real user id is that of one of these users *on the node*: \
             `guard-run` looks the names up in the node's `/etc/passwd` when it loads the policy, \
             and refuses a name the node does not have. For a container's own users, write \
             `uid(N)`.",
        ),
        "cgroup" => (
            "cgroup(\"/PATH\")",
            "The process is in this cgroup (v2, as `/proc/PID/cgroup` shows it) or one below it.",
        ),
        "container" => (
            "container(\"NAME\" | LIST, ...)",
            "The process runs in a container with one of these names (the Kubernetes container \
             name, or Docker's), or whose id starts with one of them (12 or more hex digits).",
        ),
        "k8s_namespace" => (
            "k8s_namespace(\"NAMESPACE\" | LIST, ...)",
            "The process runs in a container of a pod in one of these Kubernetes namespaces.",
        ),
        "pod_label" => (
            "pod_label(\"KEY=VALUE\" | LIST, ...)",
            "The process runs in a container of a pod that has one of these labels (recorded \
             on the node by CRI-O; under containerd no pod has labels).",
        ),
        _ => return None,
    })
}

/// The snippet completion inserts for a function (`$1`… are the editor's tab stops).
pub fn function_snippet(name: &str) -> String {
    match name {
        "ancestor" | "image" => format!("{name}(${{1|pid1,any|}}, \"$2\")"),
        "uid" => "uid($1)".to_string(),
        "exe" => "exe($1)".to_string(),
        _ => format!("{name}(\"$1\")"),
    }
}

/// A condition written as a bare name.
pub fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "tty" => {
            "Built-in condition: the process has a controlling terminal, as `kubectl exec -it`, \
             `docker exec -it` and SSH sessions give it."
        }
        "entered" => {
            "Built-in condition: the process was brought into its pid namespace from outside \
             (`kubectl exec`, `nsenter`), or descends from such a process there."
        }
        "nobody" => "Built-in condition: holds for no process, for rules that allow no one.",
        _ => return None,
    })
}

/// The first argument of `ancestor` and `image`.
pub fn selector(name: &str) -> Option<&'static str> {
    Some(match name {
        "pid1" => {
            "`pid1`: the first process (PID 1) of the process's pid namespace, a container's \
             first process. A process that entered the namespace from outside does not descend \
             from it."
        }
        "any" => "`any`: the process itself or any of its ancestors, regardless of namespaces.",
        _ => return None,
    })
}

/// What a `%field` of an alert message is replaced with.
pub fn field(field: Field) -> &'static str {
    match field {
        Field::EvtTime => "time of the event",
        Field::EvtType => "`open` for file rules, `execve` for `exec` rules",
        Field::ProcName => "the process name",
        Field::ProcCmdline => "the process's command line",
        Field::ProcPid => "the process id",
        Field::ProcPpid => "the parent's process id",
        Field::ProcExepath => "for `exec` rules, the program executed",
        Field::ProcPname => "the parent's process name",
        Field::ThreadTid => "the thread id",
        Field::UserName => "the process's user name",
        Field::UserUid => "the process's user id",
        Field::GroupGid => "the process's group id",
        Field::FdName => "for file rules, the file opened",
        Field::ContainerId => {
            "the first 12 hex digits of the container's id, or `host` for a process in no \
             container"
        }
        Field::ContainerName => "the container's name",
        Field::ContainerImageRepository => "the container image's repository",
        Field::ContainerImageTag => "the container image's tag",
        Field::K8sPodName => "the Kubernetes pod's name",
        Field::K8sNsName => "the Kubernetes pod's namespace",
        Field::RuleName => "the rule's name (`rule \"NAME\"`, or `guard` and its objects)",
        Field::GuardAction => "what guard did: `killed`, `denied`, `alerted` or `kill failed`",
    }
}

/// A priority's place among Falco's eight.
pub fn priority(priority: Priority) -> String {
    let rank = Priority::ALL
        .iter()
        .position(|&p| p == priority)
        .map_or(0, |i| i + 1);
    let default = match priority {
        Priority::Critical => " The default of `kill` and `deny` rules.",
        Priority::Warning => " The default of alert-only rules.",
        _ => "",
    };
    format!(
        "Falco priority `{}`: {rank} of 8, from the most severe (`emergency`) to the least \
         (`debug`); written in any case.{default}",
        priority.as_str()
    )
}

/// The priorities as completion offers them (the spelling the book uses).
pub fn priority_names() -> Vec<(String, Priority)> {
    Priority::ALL
        .into_iter()
        .map(|p| (p.as_str().to_lowercase(), p))
        .collect()
}

/// A keyword.
pub fn keyword(word: &str) -> Option<&'static str> {
    Some(match word {
        "guard" => {
            "`guard [OPERATION] OBJECT... allow CONDITION else ACTION`: a rule. Every rule that \
             covers an operation must allow it; otherwise its action is taken."
        }
        "rule" => "`rule \"NAME\"` before `guard` names the rule in its alerts (`%rule.name`).",
        "allow" => "Starts the condition a process must satisfy to perform the operation.",
        "else" => "`else [kill | deny] [alert [PRIORITY [\"MESSAGE\"]]]`: what happens otherwise.",
        "kill" => {
            "The refused process is killed with SIGKILL before it can use what it opened or run \
             the program it executed."
        }
        "deny" => {
            "The refused operation fails with `EPERM` (needs the BPF-LSM backend; on the \
             tracepoint backend `guard-run` refuses the policy unless given `--deny-as-kill`)."
        }
        "alert" => {
            "`alert [PRIORITY [\"MESSAGE\"]]` sets the refused operation's alert; alone it stops \
             nothing. In a message, `%FIELD` is replaced by the event's value, `%%` is `%`."
        }
        "tags" => "`tags [TAG, ...]` attaches tags to the rule's alerts, as Falco rules do.",
        "open" => "Operation: a file opened in any mode (the default).",
        "read" => "Operation: a file opened for reading (read-only or read-write).",
        "write" => {
            "Operation: a file opened for writing (write-only or read-write), creating or \
             truncating it included."
        }
        "exec" => {
            "Operation: a program executed. Objects are program names (`\"curl\"`, any file of \
             that name) or path patterns."
        }
        "import" => "`import \"MODULE\"` brings in a standard library module's lists and macros.",
        "list" => "`list NAME = [ITEM, ...]`: path patterns, strings or other lists.",
        "macro" => "`macro NAME = CONDITION`: a named condition.",
        "and" => "Both conditions hold. `not` binds tightest, then `and`, then `or`.",
        "or" => "Either condition holds. `or` binds loosest.",
        "not" => "The condition does not hold. `not` binds tightest.",
        _ => return None,
    })
}

/// Every keyword, in the lexer's order.
#[cfg(test)]
const KEYWORDS: [&str; 18] = [
    "guard", "allow", "else", "kill", "deny", "alert", "and", "or", "not", "import", "list",
    "macro", "rule", "open", "read", "write", "exec", "tags",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{BUILTIN_CONDITIONS, FUNCTIONS};
    use crate::syntax::lexer::{Token, lex};

    #[test]
    fn everything_built_in_is_documented() {
        for f in FUNCTIONS {
            assert!(function(f).is_some(), "function `{f}` has no documentation");
        }
        for b in BUILTIN_CONDITIONS {
            assert!(builtin(b).is_some(), "`{b}` has no documentation");
        }
        for k in KEYWORDS {
            assert!(keyword(k).is_some(), "keyword `{k}` has no documentation");
        }
        for f in Field::ALL {
            assert!(!field(f).is_empty());
        }
    }

    #[test]
    fn keywords_are_the_lexers() {
        let all = KEYWORDS.join(" ");
        let (tokens, _) = lex(&all);
        assert_eq!(tokens.len(), KEYWORDS.len());
        assert!(tokens.iter().all(|(_, t, _)| t.is_keyword()));
        let (tokens, _) = lex("guard2 tty");
        assert!(tokens.iter().all(|(_, t, _)| matches!(t, Token::Ident(_))));
    }
}
