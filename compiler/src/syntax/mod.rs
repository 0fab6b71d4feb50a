//! Source text to syntax tree: [`lexer`] (logos), [`parser`] (lalrpop, with
//! the grammar in `grammar/guard.lalrpop`), and the [`ast`] they build.

pub mod ast;
pub mod lexer;
pub mod parser;
