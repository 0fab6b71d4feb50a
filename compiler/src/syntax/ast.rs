//! The syntax tree, exactly as written.
//!
//! Names here are still raw text (`Ident`): the checker resolves them into
//! the typed [`crate::checked`] form, so an unknown function, list, macro or
//! priority can never reach later passes. Every node carries its [`Span`].

use crate::span::Span;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub items: Vec<Item>,
}

/// One top-level item of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Import(Import),
    List(List),
    Macro(Macro),
    Rule(Box<Rule>),
}

impl Item {
    /// The whole item, from its first keyword to its last token.
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::List(l) => l.span,
            Item::Macro(m) => m.span,
            Item::Rule(r) => r.span_with_name(),
        }
    }
}

/// `import "NAME"`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub module: StrLit,
    pub span: Span,
}

/// `list NAME = [VALUE, …]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List {
    pub name: Ident,
    pub items: Vec<Value>,
    /// From `list` to the closing `]` (so the `]` is the last byte).
    pub span: Span,
}

/// `macro NAME = SUBJECT`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Macro {
    pub name: Ident,
    pub body: Expr,
    pub span: Span,
}

/// `[rule "NAME"] guard [OPERATION] OBJECT+ allow SUBJECT else ELSE [tags [TAG, …]]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `rule "NAME"`, if written.
    pub name: Option<RuleName>,
    /// The span of the `guard` keyword (line numbers point here).
    pub keyword: Span,
    pub operation: Option<Operation>,
    pub objects: Vec<Value>,
    pub subject: Expr,
    pub otherwise: Else,
    pub tags: Option<Tags>,
    /// From `guard` to the rule's last token.
    pub span: Span,
}

impl Rule {
    /// The rule including its `rule "NAME"` prefix.
    pub fn span_with_name(&self) -> Span {
        match &self.name {
            Some(name) => name.span.to(self.span),
            None => self.span,
        }
    }
}

/// `rule "NAME"`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleName {
    pub value: StrLit,
    /// From `rule` to the end of the string.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    pub kind: OperationKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Open,
    Read,
    Write,
    Exec,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Open => "open",
            OperationKind::Read => "read",
            OperationKind::Write => "write",
            OperationKind::Exec => "exec",
        }
    }
}

/// `tags [TAG, …]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags {
    pub items: Vec<Value>,
    /// From `tags` to the closing `]`.
    pub span: Span,
}

/// A list item, a rule's object or a tag: a literal or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Literal(Literal),
    Name(Ident),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Literal(l) => l.span,
            Value::Name(n) => n.span,
        }
    }

    /// The source text (quotes included for a string).
    pub fn source(&self) -> &str {
        match self {
            Value::Literal(l) => &l.source,
            Value::Name(n) => &n.name,
        }
    }
}

/// A bare path pattern (`/etc/*`) or a string (`"/my dir/*"`, `"curl"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    /// The value after unescaping.
    pub text: String,
    /// The source text, quotes included for a string.
    pub source: String,
    /// Whether [`Literal::text`] is byte-for-byte the source between the
    /// quotes (always true for bare patterns), so offsets into `text` can be
    /// mapped back to exact source positions.
    pub verbatim: bool,
    pub span: Span,
}

impl Literal {
    pub fn is_quoted(&self) -> bool {
        self.source.starts_with('"')
    }

    /// The source span of `range`, a byte range of [`Literal::text`]; the
    /// whole literal if escapes make an exact position unknowable.
    pub fn span_of(&self, range: std::ops::Range<usize>) -> Span {
        if !self.verbatim {
            return self.span;
        }
        let quote = usize::from(self.is_quoted());
        self.span.inner(range.start + quote..range.end + quote)
    }

    pub fn bare(text: &str, span: Span) -> Literal {
        Literal {
            text: text.to_string(),
            source: text.to_string(),
            verbatim: true,
            span,
        }
    }

    pub fn quoted(s: StrLit) -> Literal {
        Literal {
            verbatim: s.value == s.raw,
            source: format!("\"{}\"", s.raw),
            text: s.value,
            span: s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Call(Call),
    /// A bare name: `tty` or a macro.
    Name(Ident),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Kept so spans and the formatter see what the user wrote.
    Paren(Box<Expr>),
}

/// `NAME(ARG, …)`; the grammar also accepts `NAME()` so the checker can
/// report a wrong argument count instead of a bare syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub function: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Ident(Ident),
    Str(StrLit),
    /// A bare path pattern (`exe(/usr/bin/*)`).
    Path(Literal),
    Number(Number),
    /// A call as an argument: `exe(…)` in `ancestor(any, exe(/usr/sbin/sshd))`.
    Call(Call),
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Call(call) => call.span,
            Arg::Ident(ident) => ident.span,
            Arg::Str(lit) => lit.span,
            Arg::Path(lit) => lit.span,
            Arg::Number(n) => n.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// Digits as written; the checker decides whether the value fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    /// The value after unescaping.
    pub value: String,
    /// The source text between the quotes, escapes intact.
    pub raw: String,
    /// Includes the quotes.
    pub span: Span,
}

/// `else [kill|deny] [alert [PRIORITY] [MESSAGE]]`; the grammar ensures at
/// least one of the two parts is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Else {
    pub enforce: Option<Enforce>,
    pub alert: Option<AlertClause>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enforce {
    pub kind: EnforceKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnforceKind {
    Kill,
    Deny,
}

/// `alert [PRIORITY] [MESSAGE]`. The grammar is laxer than the language
/// (it accepts a message without a priority) so the checker can explain
/// that mistake precisely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertClause {
    pub priority: Option<Ident>,
    pub message: Option<StrLit>,
    pub span: Span,
}
