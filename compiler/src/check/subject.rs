//! Conditions: `and`/`or`/`not`, macros, and the atoms `ancestor` (of a command line or of
//! an executable, `exe(…)`), `image`, `cmdline`, `name`, `exe`, `uid` and `tty` (`user` and
//! the scopes are in [`super::scope`]).

use super::Checker;
use super::names::{BUILTIN_CONDITIONS, Cond, DefKind, Want};
use super::pattern::{Context, path_problems};
use std::collections::HashSet;

use crate::checked::{MAX_CMDLINE_LEN, MAX_PROCESS_NAME_LEN, MAX_UID, Scope, Subject, Which};
use crate::diag::{Diagnostic, File, codes, list, suggest};
use crate::span::Span;
use crate::syntax::ast;

/// The functions a condition may call.
pub const FUNCTIONS: [&str; 11] = [
    "ancestor",
    "image",
    "cmdline",
    "name",
    "exe",
    "uid",
    "user",
    "cgroup",
    "container",
    "k8s_namespace",
    "pod_label",
];

/// An example call of each function, for help messages.
fn example(function: &str) -> &'static str {
    match function {
        "ancestor" => "ancestor(pid1, \"python app.py\")",
        "image" => "image(pid1, \"python app.py\")",
        "cmdline" => "cmdline(\"python *\")",
        "name" => "name(\"sh\", \"bash\")",
        "exe" => "exe(/usr/bin/python3, /usr/local/bin/*)",
        "cgroup" => "cgroup(\"/kubepods.slice\")",
        "user" => "user(\"www-data\")",
        "container" => "container(\"web\")",
        "k8s_namespace" => "k8s_namespace(\"payments\")",
        "pod_label" => "pod_label(\"app=vault\")",
        _ => "uid(0)",
    }
}

/// A literal to validate, with the file it is written in and, when it
/// comes from a list, the place in this file that uses the list.
pub(super) struct Item {
    pub literal: ast::Literal,
    pub file: File,
    pub via: Option<Span>,
}

impl Checker<'_, '_> {
    /// A rule's condition, macros expanded.
    pub(super) fn rule_subject(&mut self, expr: &ast::Expr) -> Option<Subject> {
        let cond = self.condition(expr, None)?;
        if cond.measure(&self.session.arena).too_big() {
            self.too_complex(expr.span, "this condition");
            return None;
        }
        Some(cond.expand(&self.session.arena, None))
    }

    /// Resolves a condition. `inside` is the macro being defined, if any.
    pub(super) fn condition(&mut self, expr: &ast::Expr, inside: Option<&str>) -> Option<Cond> {
        match &expr.kind {
            ast::ExprKind::Call(call) => self.call(call, inside),
            ast::ExprKind::Name(name) => self.named_condition(name, inside),
            ast::ExprKind::Paren(inner) => self.condition(inner, inside),
            ast::ExprKind::Not(inner) => Some(Cond::Not(Box::new(self.condition(inner, inside)?))),
            ast::ExprKind::And(a, b) | ast::ExprKind::Or(a, b) => {
                // Both sides first: a mistake on the left must not hide one
                // on the right.
                let (a, b) = (self.condition(a, inside), self.condition(b, inside));
                let (a, b) = (Box::new(a?), Box::new(b?));
                Some(match expr.kind {
                    ast::ExprKind::And(..) => Cond::And(a, b),
                    _ => Cond::Or(a, b),
                })
            }
        }
    }

    fn is_defined(&self, name: &str) -> bool {
        self.scope.contains_key(name) || self.pending.contains_key(name)
    }

    /// A bare name: `tty` or a macro.
    fn named_condition(&mut self, name: &ast::Ident, inside: Option<&str>) -> Option<Cond> {
        if BUILTIN_CONDITIONS.contains(&name.name.as_str()) {
            let span = name.span;
            return Some(Cond::Atom(match name.name.as_str() {
                "entered" => Subject::Entered { span },
                "nobody" => Subject::Nobody { span },
                _ => Subject::Tty { span },
            }));
        }
        let function = name.name.as_str();
        if FUNCTIONS.contains(&function) && !self.is_defined(function) {
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARITY,
                    format!("`{function}` is a function and needs arguments"),
                    name.span,
                    "arguments missing",
                )
                .with_help(format!("write e.g. `{}`", example(function))),
            );
            return None;
        }
        match self.resolve(name, Want::Macro, inside)? {
            DefKind::Macro(id) => Some(Cond::Macro(id, name.span)),
            _ => None,
        }
    }

    fn call(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Cond> {
        let name = call.function.name.as_str();
        let atom = match name {
            "ancestor" | "image" => return self.ancestry(call, inside).map(Cond::Atom),
            "cmdline" => Subject::Cmdline {
                pattern: self.cmdline_glob(call)?,
                span: call.span,
            },
            "name" => Subject::Name {
                names: self.process_names(call, inside)?,
                span: call.span,
            },
            "exe" => Subject::Exe {
                patterns: self.exe_patterns(call, inside)?,
                span: call.span,
            },
            "uid" => Subject::Uid {
                uid: self.uid(call)?,
                span: call.span,
            },
            "cgroup" => Subject::Scope {
                scope: Scope::Cgroup {
                    path: self.cgroup_path(call)?,
                },
                span: call.span,
            },
            "user" => return self.users(call, inside).map(Cond::Atom),
            "container" | "k8s_namespace" | "pod_label" => {
                return self.scope(call, inside).map(Cond::Atom);
            }
            _ => {
                self.unknown_function(call);
                return None;
            }
        };
        Some(Cond::Atom(atom))
    }

    fn unknown_function(&mut self, call: &ast::Call) {
        let name = call.function.name.as_str();
        let span = call.function.span;
        if BUILTIN_CONDITIONS.contains(&name) {
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARITY,
                    format!("`{name}` takes no arguments"),
                    call.span,
                    "no parentheses here",
                )
                .with_help(format!("write `{name}`")),
            );
            return;
        }
        let diagnostic = Diagnostic::error(
            codes::UNKNOWN_FUNCTION,
            format!("unknown function `{name}`"),
            span,
            "not a known function",
        );
        let is_macro = matches!(self.scope.get(name), Some(def) if !matches!(def.kind, DefKind::List(_) | DefKind::Broken(true)))
            || matches!(self.pending.get(name), Some(&(_, false)));
        if is_macro {
            self.used.insert(name.to_string());
            self.error(
                diagnostic.with_help(format!("`{name}` is a macro: write it without parentheses")),
            );
            return;
        }
        let suggestion = suggest(name, FUNCTIONS);
        self.error(match suggestion {
            Some(_) => diagnostic.with_suggestion(suggestion),
            None => diagnostic.with_help(format!(
                "the functions are {}, e.g. `{}`",
                list(&FUNCTIONS.map(|f| format!("`{f}`")), "and"),
                example("ancestor")
            )),
        });
    }

    fn wrong_arity(&mut self, call: &ast::Call, wanted: &str, n_wanted: &str) {
        let name = call.function.name.as_str();
        let n = call.args.len();
        let given = match n {
            1 => "1 was given".to_string(),
            n => format!("{n} were given"),
        };
        let help = match name {
            "ancestor" | "image" => format!("write `{}` or `{name}(any, \"…\")`", example(name)),
            "name" => format!("write `{}`, or name a list: `name(shells)`", example(name)),
            _ => format!("write e.g. `{}`", example(name)),
        };
        self.error(
            Diagnostic::error(
                codes::WRONG_ARITY,
                format!("`{name}` takes {wanted} but {given}"),
                call.span,
                format!("expected {n_wanted}, found {n}"),
            )
            .with_help(help),
        );
    }

    /// `ancestor(WHICH, CMDLINE)`, `ancestor(WHICH, exe(PATTERN, …))` and
    /// `image(WHICH, CMDLINE)`.
    fn ancestry(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Subject> {
        let function = call.function.name.as_str();
        let [which, cmdline] = call.args.as_slice() else {
            self.wrong_arity(call, "2 arguments", "2 arguments");
            return None;
        };
        let span = call.span;
        match (which, cmdline) {
            (ast::Arg::Call(c), ast::Arg::Ident(i)) => {
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!("the arguments of `{function}` are in the wrong order"),
                        c.span,
                        "expected `pid1` or `any` here",
                    )
                    .with_secondary(i.span, format!("expected `{}(…)` here", c.function.name))
                    .with_help(format!(
                        "write `{function}({}, {}(…))`",
                        i.name, c.function.name
                    )),
                );
                None
            }
            (which, ast::Arg::Call(inner)) => {
                let which = self.which(function, which);
                let patterns = self.ancestry_exe(function, which, inner, inside);
                Some(Subject::AncestorExe {
                    which: which?,
                    patterns: patterns?,
                    span,
                })
            }
            // Both the wrong way round: say so once, not twice.
            (ast::Arg::Str(s), ast::Arg::Ident(i)) => {
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!("the arguments of `{function}` are in the wrong order"),
                        s.span,
                        "expected `pid1` or `any` here",
                    )
                    .with_secondary(i.span, "expected a command line string here")
                    .with_help(format!("write `{function}({}, \"{}\")`", i.name, s.raw)),
                );
                None
            }
            (which, cmdline) => {
                let which = self.which(function, which);
                let cmdline = self.exact_cmdline(function, cmdline);
                let (which, cmdline) = (which?, cmdline?);
                Some(if function == "ancestor" {
                    Subject::Ancestor {
                        which,
                        cmdline,
                        span,
                    }
                } else {
                    Subject::Image {
                        which,
                        cmdline,
                        span,
                    }
                })
            }
        }
    }

    /// The `exe(…)` call in `ancestor(WHICH, exe(…))`: its patterns. `image` takes no
    /// `exe(…)`: a process forked without exec runs its parent's executable, so
    /// `image(any, exe(P))` would only be `exe(P)`, and the init's executable is
    /// `ancestor(pid1, exe(P))`'s business.
    fn ancestry_exe(
        &mut self,
        function: &str,
        which: Option<Which>,
        inner: &ast::Call,
        inside: Option<&str>,
    ) -> Option<Vec<String>> {
        let name = inner.function.name.as_str();
        let image = function == "image";
        if name != "exe" {
            let (what, expected) = if image {
                ("a command line string", "expected a string")
            } else {
                (
                    "a command line string or `exe(…)`",
                    "expected `exe` or a string",
                )
            };
            let help = match suggest(name, ["exe"]) {
                Some(s) if !image => format!("did you mean `{s}`?"),
                _ => format!(
                    "`{function}` takes {what}; combine other conditions with `and`, e.g. `{function}(any, \"…\") and {name}(…)`"
                ),
            };
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARGUMENT_KIND,
                    format!(
                        "the second argument of `{function}` must be {what}, not a call of `{name}`"
                    ),
                    inner.function.span,
                    expected,
                )
                .with_help(help),
            );
            return None;
        }
        if image {
            let help = match which {
                Some(Which::Any) => {
                    "a process forked without exec runs its parent's executable: write `exe(…)` alone".to_string()
                }
                _ => "for the executable of the namespace's init write `ancestor(pid1, exe(…))`; `image(pid1, …)` takes the init's command line".to_string(),
            };
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARGUMENT_KIND,
                    "`image` takes a command line string, not `exe(…)`",
                    inner.span,
                    "an executable pattern",
                )
                .with_help(help),
            );
            return None;
        }
        self.exe_patterns(inner, inside)
    }

    fn which(&mut self, function: &str, arg: &ast::Arg) -> Option<Which> {
        let names = Which::ALL.map(Which::as_str);
        let ident = match arg {
            ast::Arg::Ident(ident) => ident,
            other => {
                let help = match other {
                    ast::Arg::Str(_) => "remove the quotes: the selector is a name",
                    _ => {
                        "write `pid1` (the container's first process) or `any` (the process or any ancestor)"
                    }
                };
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!(
                            "the first argument of `{function}` must be `pid1` or `any`, not {}",
                            describe(other)
                        ),
                        other.span(),
                        "expected `pid1` or `any`",
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        let found = Which::ALL.into_iter().find(|w| w.as_str() == ident.name);
        if found.is_none() {
            self.error(
                Diagnostic::error(
                    codes::UNKNOWN_SELECTOR,
                    format!("unknown {function} selector `{}`", ident.name),
                    ident.span,
                    "expected `pid1` or `any`",
                )
                .with_help(match suggest(&ident.name, names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "the selectors are `pid1` (the ancestor with PID 1) and `any` (any ancestor)".to_string(),
                }),
            );
        }
        found
    }

    /// A command line compared exactly (`ancestor`, `image`).
    fn exact_cmdline(&mut self, function: &str, arg: &ast::Arg) -> Option<String> {
        let lit = self.string_arg(function, "second", "a command line string", arg)?;
        self.cmdline_text(function, lit)?;
        Some(lit.value.clone())
    }

    /// `cmdline("GLOB")`
    fn cmdline_glob(&mut self, call: &ast::Call) -> Option<String> {
        let [arg] = call.args.as_slice() else {
            self.wrong_arity(call, "1 argument", "1 argument");
            return None;
        };
        let lit = self.string_arg("cmdline", "", "a command line pattern", arg)?;
        self.cmdline_text("cmdline", lit)?;
        // A `\` escapes the next byte; one at the very end escapes nothing.
        let mut escaped = false;
        for c in lit.value.chars() {
            escaped = !escaped && c == '\\';
        }
        if escaped {
            self.error(
                Diagnostic::error(
                    codes::INVALID_CMDLINE_GLOB,
                    "the command line pattern ends with an unfinished escape `\\`",
                    lit.span,
                    "ends with `\\`",
                )
                .with_help("in a pattern `\\` escapes the next character; write `\\\\\\\\` in the string for a literal backslash"),
            );
            return None;
        }
        Some(lit.value.clone())
    }

    /// `cgroup("/path")`: a cgroup v2 path, relative to the cgroup2 mount.
    fn cgroup_path(&mut self, call: &ast::Call) -> Option<String> {
        let [arg] = call.args.as_slice() else {
            self.wrong_arity(call, "1 argument", "1 argument");
            return None;
        };
        let lit = self.string_arg("cgroup", "", "a cgroup path", arg)?;
        let path = lit.value.as_str();
        let bad = if !path.starts_with('/') {
            Some("it must start with `/` (the root of the cgroup v2 hierarchy)")
        } else if path.len() > 4095 {
            Some("it is longer than 4095 bytes")
        } else if path != "/"
            && path[1..]
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            Some("it has an empty, `.` or `..` component (or a trailing `/`)")
        } else {
            None
        };
        if let Some(why) = bad {
            self.error(
                Diagnostic::error(
                    codes::INVALID_CGROUP,
                    format!("invalid cgroup path: {why}"),
                    lit.span,
                    "this path",
                )
                .with_help(
                    "write the path as in /proc/PID/cgroup's `0::` line, e.g. `cgroup(\"/kubepods.slice\")`",
                ),
            );
            return None;
        }
        Some(path.to_string())
    }

    /// The string argument `position` ("second", or "" for the only one).
    fn string_arg<'c>(
        &mut self,
        function: &str,
        position: &str,
        what: &str,
        arg: &'c ast::Arg,
    ) -> Option<&'c ast::StrLit> {
        if let ast::Arg::Str(lit) = arg {
            return Some(lit);
        }
        let the = if position.is_empty() {
            format!("the argument of `{function}`")
        } else {
            format!("the {position} argument of `{function}`")
        };
        let help = match arg {
            ast::Arg::Ident(i) => format!("quote the command line: `\"{}\"`", i.name),
            ast::Arg::Path(p) => format!("quote it: `\"{}\"`", p.text),
            ast::Arg::Number(n) => format!("quote it: `\"{}\"`", n.text),
            ast::Arg::Call(_) => {
                "write the call as a condition of its own, joined with `and` or `or`".to_string()
            }
            ast::Arg::Str(_) => String::new(),
        };
        self.error(
            Diagnostic::error(
                codes::WRONG_ARGUMENT_KIND,
                format!("{the} must be {what}, not {}", describe(arg)),
                arg.span(),
                "expected a string",
            )
            .with_help(help),
        );
        None
    }

    fn cmdline_text(&mut self, function: &str, lit: &ast::StrLit) -> Option<()> {
        if lit.value.is_empty() {
            self.error(
                Diagnostic::error(
                    codes::EMPTY_CMDLINE,
                    "the command line is empty",
                    lit.span,
                    "empty command line",
                )
                .with_help(
                    "write the full command line, argv joined by spaces, e.g. `\"python app.py\"`",
                ),
            );
            return None;
        }
        if lit.value.len() > MAX_CMDLINE_LEN {
            self.error(
                Diagnostic::error(
                    codes::CMDLINE_TOO_LONG,
                    format!(
                        "the command line is {} bytes long, more than the limit of {MAX_CMDLINE_LEN}",
                        lit.value.len()
                    ),
                    lit.span,
                    "too long",
                )
                .with_help(format!(
                    "`{function}` compares at most {MAX_CMDLINE_LEN} bytes of a command line"
                )),
            );
            return None;
        }
        Some(())
    }

    /// The literals of a variadic call, lists expanded, and whether every
    /// argument was a string, path pattern or usable list.
    pub(super) fn literal_args(
        &mut self,
        call: &ast::Call,
        inside: Option<&str>,
    ) -> (Vec<Item>, bool) {
        if call.args.is_empty() {
            self.wrong_arity(call, "at least 1 argument", "at least 1 argument");
            return (Vec::new(), false);
        }
        let mut items = Vec::new();
        let mut ok = true;
        for arg in &call.args {
            match arg {
                ast::Arg::Str(s) => items.push(Item {
                    literal: ast::Literal::quoted(s.clone()),
                    file: self.file.clone(),
                    via: None,
                }),
                ast::Arg::Path(p) => items.push(Item {
                    literal: p.clone(),
                    file: self.file.clone(),
                    via: None,
                }),
                ast::Arg::Ident(name) => match self.list_items(name, inside) {
                    Some(list) => items.extend(list),
                    None => ok = false,
                },
                ast::Arg::Call(c) => {
                    ok = false;
                    self.error(
                        Diagnostic::error(
                            codes::WRONG_ARGUMENT_KIND,
                            format!(
                                "`{}` takes strings or lists, not a call of `{}`",
                                call.function.name, c.function.name
                            ),
                            c.span,
                            "a call",
                        )
                        .with_help(
                            "write the call as a condition of its own, joined with `and` or `or`",
                        ),
                    );
                }
                ast::Arg::Number(n) => {
                    ok = false;
                    self.error(
                        Diagnostic::error(
                            codes::WRONG_ARGUMENT_KIND,
                            format!(
                                "`{}` takes strings or lists, not a number",
                                call.function.name
                            ),
                            n.span,
                            "a number",
                        )
                        .with_help(format!("quote it: `\"{}\"`", n.text)),
                    );
                }
            }
        }
        (items, ok)
    }

    /// Reports a problem with an item, in the item's file, pointing also
    /// at the use of its list.
    pub(super) fn item_error(&mut self, diagnostic: Diagnostic, item: &Item, used_as: &str) {
        let mut diagnostic = diagnostic.in_file(&item.file);
        if let Some(via) = item.via {
            diagnostic = diagnostic.with_secondary(via, format!("used as {used_as} here"));
        }
        self.error(diagnostic);
    }

    /// `name(NAME_OR_LIST, …)`
    fn process_names(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Vec<String>> {
        let (items, ok) = self.literal_args(call, inside);
        let before = self.error_count();
        let mut names: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for item in &items {
            let lit = &item.literal;
            let text = lit.text.as_str();
            let problem = if !lit.is_quoted() {
                Some(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!("`name` takes process names, not the path pattern `{text}`"),
                        lit.span,
                        "a path pattern",
                    )
                    .with_help(format!("to match the executable's path, use `exe({text})`")),
                )
            } else if text.is_empty() {
                Some(Diagnostic::error(
                    codes::INVALID_PROCESS_NAME,
                    "empty process name",
                    lit.span,
                    "empty",
                ))
            } else if text.contains('/') {
                Some(Diagnostic::error(
                    codes::INVALID_PROCESS_NAME,
                    format!("process name `{text}` contains `/`"),
                    lit.span,
                    "contains `/`",
                )
                .with_help(format!(
                    "a process name never contains `/`; to match the executable's path, use `exe({})`",
                    lit.source
                )))
            } else if text.len() > MAX_PROCESS_NAME_LEN {
                let truncated = truncate_name(text);
                Some(Diagnostic::error(
                    codes::INVALID_PROCESS_NAME,
                    format!(
                        "process name `{text}` is {} bytes long, more than the kernel keeps ({MAX_PROCESS_NAME_LEN})",
                        text.len()
                    ),
                    lit.span,
                    "too long to ever match",
                )
                .with_help(format!(
                    "the kernel cuts process names to {MAX_PROCESS_NAME_LEN} bytes, so this one is seen as `{truncated}`; write that, or match the executable: `exe(\"/**/{text}\")`"
                )))
            } else {
                None
            };
            match problem {
                Some(d) => self.item_error(d, item, "a process name"),
                None if seen.insert(text) => names.push(text.to_string()),
                None => {}
            }
        }
        (ok && self.error_count() == before).then_some(names)
    }

    /// `exe(PATTERN_OR_LIST, …)`
    fn exe_patterns(&mut self, call: &ast::Call, inside: Option<&str>) -> Option<Vec<String>> {
        let (items, ok) = self.literal_args(call, inside);
        let before = self.error_count();
        let mut patterns: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for item in &items {
            let lit = &item.literal;
            let problems = path_problems(&lit.text, lit, true, Context::Exe);
            if problems.is_empty() {
                if seen.insert(lit.text.as_str()) {
                    patterns.push(lit.text.clone());
                }
                continue;
            }
            for d in problems {
                self.item_error(d, item, "an executable path pattern");
            }
        }
        (ok && self.error_count() == before).then_some(patterns)
    }

    /// `uid(NUMBER)`
    fn uid(&mut self, call: &ast::Call) -> Option<u32> {
        let [arg] = call.args.as_slice() else {
            self.wrong_arity(call, "1 argument", "1 argument");
            return None;
        };
        let ast::Arg::Number(n) = arg else {
            let help = match arg {
                ast::Arg::Str(s) if s.value.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("remove the quotes: `uid({})`", s.value)
                }
                ast::Arg::Ident(ast::Ident { name, .. })
                | ast::Arg::Str(ast::StrLit { value: name, .. }) => {
                    format!(
                        "for a user name write `user(\"{name}\")` (resolved on the node when the policy is loaded)"
                    )
                }
                _ => "write the numeric uid, e.g. `uid(1000)`".to_string(),
            };
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARGUMENT_KIND,
                    format!(
                        "the argument of `uid` must be a number, not {}",
                        describe(arg)
                    ),
                    arg.span(),
                    "expected a number",
                )
                .with_help(help),
            );
            return None;
        };
        match n.text.parse::<u64>() {
            Ok(uid) if uid <= u64::from(MAX_UID) => u32::try_from(uid).ok(),
            _ => {
                self.error(
                    Diagnostic::error(
                        codes::INVALID_UID,
                        format!("uid `{}` is out of range", n.text),
                        n.span,
                        format!("not in 0..={MAX_UID}"),
                    )
                    .with_help(format!(
                        "a uid is at most {MAX_UID} ({} is `(uid_t)-1`, no user)",
                        u32::MAX
                    )),
                );
                None
            }
        }
    }
}

/// The first 15 bytes of a name, cut at a character boundary.
fn truncate_name(text: &str) -> &str {
    let mut end = MAX_PROCESS_NAME_LEN.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// "a string", "the name `x`", … for messages about argument kinds.
fn describe(arg: &ast::Arg) -> String {
    match arg {
        ast::Arg::Ident(i) => format!("the name `{}`", i.name),
        ast::Arg::Str(_) => "a string".to_string(),
        ast::Arg::Path(p) => format!("the path pattern `{}`", p.text),
        ast::Arg::Number(n) => format!("the number `{}`", n.text),
        ast::Arg::Call(c) => format!("a call of `{}`", c.function.name),
    }
}
