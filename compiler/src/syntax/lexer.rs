//! The lexer: source text to `(start, Token, end)` triples.
//!
//! Lexical errors do not stop lexing. Each one is recorded as a [`LexError`]
//! and replaced in the token stream by [`Token::Error`], which no grammar
//! production accepts: the parser then recovers at the next item, and
//! the parser wrapper drops the resulting syntax error because the lexer has
//! already explained the problem.

use std::fmt;

use logos::Logos;

use crate::span::Span;

/// What went wrong while lexing, with the exact place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A character that cannot start any token.
    #[default]
    UnexpectedChar,
    /// A string literal without its closing quote on the same line.
    UnterminatedString,
    /// A backslash followed by something other than `"`, `\`, `n` or `t`.
    InvalidEscape,
    /// `'text'`: strings take double quotes.
    SingleQuotedString,
}

impl LexError {
    /// Called by logos when no token matches; the span is the offending
    /// character.
    fn from_lexer<'src>(lex: &mut logos::Lexer<'src, Token<'src>>) -> LexError {
        LexError {
            kind: LexErrorKind::UnexpectedChar,
            span: lex.span().into(),
        }
    }
}

/// A token. Keywords are reserved: they can never be identifiers.
#[derive(Logos, Clone, Debug, PartialEq, Eq)]
#[logos(error(LexError, LexError::from_lexer))]
#[logos(skip r"\s+")]
// A comment runs to the end of its line by definition, so the greedy
// repetition logos warns about is exactly what is wanted.
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Token<'src> {
    #[token("guard")]
    Guard,
    #[token("allow")]
    Allow,
    #[token("else")]
    Else,
    #[token("kill")]
    Kill,
    #[token("deny")]
    Deny,
    #[token("alert")]
    Alert,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,
    #[token("import")]
    Import,
    #[token("list")]
    List,
    #[token("macro")]
    Macro,
    #[token("rule")]
    Rule,
    #[token("open")]
    Open,
    #[token("read")]
    Read,
    #[token("write")]
    Write,
    #[token("exec")]
    Exec,
    #[token("tags")]
    Tags,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token("=")]
    Equals,

    /// An unquoted path pattern. INVARIANT: the excluded characters match
    /// the ones documented for patterns (whitespace, `"`, `#`, `(`, `)`,
    /// `,`, `[`, `]`), so a pattern can sit right before a comment, a call's
    /// `)` or a list's `]`; `\x` escapes any of them.
    #[regex(r##"/(?:[^\s"#(),\[\]\\]|\\[^\s])*"##, |lex| lex.slice())]
    Path(&'src str),

    /// A decimal number (`uid(1000)`); its range is checked by the checker.
    #[regex(r"[0-9]+", |lex| lex.slice())]
    Number(&'src str),

    #[regex(r"[A-Za-z_][A-Za-z0-9_.]*", |lex| lex.slice())]
    Ident(&'src str),

    /// A string literal, already unescaped. The raw text is recovered from
    /// the token's span when a byte-exact position inside it is needed.
    #[token("\"", lex_string)]
    Str(String),

    /// Stands in for a lexical error (see the module comment). Logos never
    /// returns it as a token: the pattern here (a single-quoted string, a
    /// likely habit from other languages) only ever produces an error, so
    /// that mistake is reported once rather than once per quote.
    #[regex(r"'[^'\n]*'", single_quoted)]
    Error,
}

fn single_quoted<'src>(lex: &mut logos::Lexer<'src, Token<'src>>) -> Result<(), LexError> {
    Err(LexError {
        kind: LexErrorKind::SingleQuotedString,
        span: lex.span().into(),
    })
}

/// Scans the rest of a string literal after its opening quote.
///
/// A raw newline ends the literal as unterminated: a missing quote then
/// costs one line, not the rest of the file.
fn lex_string<'src>(lex: &mut logos::Lexer<'src, Token<'src>>) -> Result<String, LexError> {
    let start = lex.span().start;
    let rest = lex.remainder();
    let mut value = String::new();
    let mut bad_escape: Option<Span> = None;
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                lex.bump(i + 1);
                return match bad_escape {
                    None => Ok(value),
                    Some(span) => Err(LexError {
                        kind: LexErrorKind::InvalidEscape,
                        span,
                    }),
                };
            }
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                // A backslash at the end of a line cannot escape the newline.
                Some((_, '\n')) | None => break,
                Some((j, other)) => {
                    // `rest` begins right after the opening quote.
                    let at = lex.span().end;
                    bad_escape.get_or_insert(Span::new(at + i, at + j + other.len_utf8()));
                }
            },
            _ => value.push(c),
        }
    }
    // Unterminated: consume up to (not including) the newline, so the
    // next line lexes normally.
    let line_len = rest.find('\n').unwrap_or(rest.len());
    lex.bump(line_len);
    Err(LexError {
        kind: LexErrorKind::UnterminatedString,
        span: Span::new(start, lex.span().end),
    })
}

impl Token<'_> {
    /// Whether the token is a reserved word.
    pub fn is_keyword(&self) -> bool {
        matches!(
            self,
            Token::Guard
                | Token::Allow
                | Token::Else
                | Token::Kill
                | Token::Deny
                | Token::Alert
                | Token::And
                | Token::Or
                | Token::Not
                | Token::Import
                | Token::List
                | Token::Macro
                | Token::Rule
                | Token::Open
                | Token::Read
                | Token::Write
                | Token::Exec
                | Token::Tags
        )
    }

    /// How the token is named in error messages ("found …").
    pub fn describe(&self) -> String {
        match self {
            Token::Path(_) | Token::Ident(_) | Token::Str(_) | Token::Number(_) => {
                format!("{} `{}`", self.kind(), shorten(&self.to_string()))
            }
            other => format!("`{other}`"),
        }
    }

    /// A short name for labels ("unexpected …").
    pub fn kind(&self) -> String {
        match self {
            Token::Path(_) => "path pattern".to_string(),
            Token::Ident(_) => "name".to_string(),
            Token::Str(_) => "string".to_string(),
            Token::Number(_) => "number".to_string(),
            Token::Error => "invalid token".to_string(),
            other => format!("`{other}`"),
        }
    }
}

/// Keeps quoted user text in messages to a readable length.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(32) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text.to_string(),
    }
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Token::Guard => "guard",
            Token::Allow => "allow",
            Token::Else => "else",
            Token::Kill => "kill",
            Token::Deny => "deny",
            Token::Alert => "alert",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::Import => "import",
            Token::List => "list",
            Token::Macro => "macro",
            Token::Rule => "rule",
            Token::Open => "open",
            Token::Read => "read",
            Token::Write => "write",
            Token::Exec => "exec",
            Token::Tags => "tags",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Comma => ",",
            Token::Equals => "=",
            Token::Path(text) | Token::Ident(text) | Token::Number(text) => text,
            Token::Str(value) => return write!(f, "{value:?}"),
            Token::Error => "<error>",
        };
        f.write_str(text)
    }
}

/// A token with its byte range, as lalrpop's external-lexer interface wants.
pub type Spanned<'src> = (usize, Token<'src>, usize);

/// Lexes the whole source. Errors are returned separately and replaced by
/// [`Token::Error`] in the token list (see the module comment).
pub fn lex(source: &str) -> (Vec<Spanned<'_>>, Vec<LexError>) {
    let mut tokens = Vec::new();
    let mut errors: Vec<LexError> = Vec::new();
    let mut lexer = Token::lexer(source);
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        match result {
            Ok(token) => tokens.push((span.start, token, span.end)),
            Err(error) => {
                // A run of stray characters (say, a pasted line of some
                // other language) is one mistake: extend the previous error
                // instead of reporting each character.
                if let (Some((_, Token::Error, end)), Some(last)) =
                    (tokens.last_mut(), errors.last_mut())
                    && last.kind == LexErrorKind::UnexpectedChar
                    && error.kind == LexErrorKind::UnexpectedChar
                    && last.span.end == *end
                {
                    *end = span.end;
                    last.span.end = span.end;
                    continue;
                }
                tokens.push((span.start, Token::Error, span.end));
                errors.push(error);
            }
        }
    }
    (tokens, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Token<'_>> {
        lex(source).0.into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn lexes_a_rule() {
        assert_eq!(
            kinds(r#"guard /a/* allow ancestor(pid1, "x\"y") else kill # c"#),
            vec![
                Token::Guard,
                Token::Path("/a/*"),
                Token::Allow,
                Token::Ident("ancestor"),
                Token::LParen,
                Token::Ident("pid1"),
                Token::Comma,
                Token::Str("x\"y".to_string()),
                Token::RParen,
                Token::Else,
                Token::Kill,
            ]
        );
    }

    #[test]
    fn keywords_are_not_prefixes_of_identifiers() {
        assert_eq!(
            kinds("guards or_x"),
            vec![Token::Ident("guards"), Token::Ident("or_x")]
        );
    }

    #[test]
    fn lexes_v2_items() {
        assert_eq!(
            kinds(r"list l = [/a/**, /b\], x] uid(0) tags [t]"),
            vec![
                Token::List,
                Token::Ident("l"),
                Token::Equals,
                Token::LBracket,
                Token::Path("/a/**"),
                Token::Comma,
                Token::Path(r"/b\]"),
                Token::Comma,
                Token::Ident("x"),
                Token::RBracket,
                Token::Ident("uid"),
                Token::LParen,
                Token::Number("0"),
                Token::RParen,
                Token::Tags,
                Token::LBracket,
                Token::Ident("t"),
                Token::RBracket,
            ]
        );
    }

    #[test]
    fn unterminated_string_stops_at_end_of_line() {
        let (tokens, errors) = lex("\"abc\nguard");
        assert_eq!(
            errors,
            vec![LexError {
                kind: LexErrorKind::UnterminatedString,
                span: Span::new(0, 4),
            }]
        );
        assert_eq!(tokens[1], (5, Token::Guard, 10));
    }

    #[test]
    fn invalid_escape_points_at_the_escape() {
        let (_, errors) = lex(r#""a\qb""#);
        assert_eq!(
            errors,
            vec![LexError {
                kind: LexErrorKind::InvalidEscape,
                span: Span::new(2, 4),
            }]
        );
    }

    #[test]
    fn unexpected_characters_form_one_error() {
        let (tokens, errors) = lex("guard @ $x ! /a");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].span, Span::new(6, 9));
        assert_eq!(errors[1].span, Span::new(11, 12));
        assert_eq!(tokens[1], (6, Token::Error, 9));
    }
}
