//! guardc, the compiler of the guard policy language.
//!
//! Front end: [`frontend::check_source`] turns policy text into a
//! [`checked::Policy`] or a list of [`diag::Diagnostic`]s; [`fmt`] prints
//! a file in canonical layout; [`lsp`] serves all of it to editors; [`cases`] runs a
//! policy's test cases on its compiled object (`guardc test`).

pub mod cases;
pub mod check;
pub mod checked;
pub mod cli;
pub mod codegen;
pub mod dfa;
pub mod diag;
pub mod fmt;
pub mod frontend;
pub mod lower;
pub mod lsp;
pub mod span;
pub mod syntax;
