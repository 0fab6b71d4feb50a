//! The syntax tree, exactly as written.
//!
//! Names here are still raw text (`Ident`): the checker resolves them into
//! the typed [`crate::checked`] form, so an unknown function or priority
//! can never reach later passes. Every node carries its [`Span`].

use crate::span::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// `guard PATTERN+ allow SUBJECT else ELSE`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The span of the `guard` keyword (rule names and line numbers point here).
    pub keyword: Span,
    pub patterns: Vec<Pattern>,
    pub subject: Expr,
    pub otherwise: Else,
    /// The whole rule, from `guard` to its last token.
    pub span: Span,
}

/// A path pattern, bare (`/etc/*`) or quoted (`"/my dir/*"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern after unescaping.
    pub text: String,
    /// The source text, quotes included for a quoted pattern.
    pub source: String,
    /// Whether [`Pattern::text`] is byte-for-byte the source between the
    /// quotes (always true for bare patterns), so offsets into `text` can be
    /// mapped back to exact source positions.
    pub verbatim: bool,
    pub span: Span,
}

impl Pattern {
    /// The source span of `range`, a byte range of [`Pattern::text`]; the
    /// whole pattern if escapes make an exact position unknowable.
    pub fn span_of(&self, range: std::ops::Range<usize>) -> Span {
        if !self.verbatim {
            return self.span;
        }
        let quote = usize::from(self.source.starts_with('"'));
        self.span.inner(range.start + quote..range.end + quote)
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
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Kept so spans and future pretty-printing see what the user wrote.
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
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Ident(ident) => ident.span,
            Arg::Str(lit) => lit.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
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
