//! `guardc lsp`: the language server.
//!
//! A Language Server Protocol server over stdin and stdout, built on rust-analyzer's
//! `lsp-server` scaffold, that gives an editor what `guardc check` says about a policy as it
//! is typed, from the same front end and lowering (see `analysis.rs` for how lowering stays
//! out of the way), plus hover documentation, go to definition, completion and `guardc fmt`.
//!
//! Layout: the loop and the protocol in `server.rs`; open documents and positions in
//! `documents.rs`; checking in `analysis.rs`, its diagnostics converted in `diagnostics.rs`;
//! names and what the cursor is on in `symbols.rs`; `hover.rs`, `definition.rs`,
//! `completion.rs`, with the built-ins' documentation in `docs.rs`; the standard library as
//! files in `stdlib.rs`; `file:` URIs in `uri.rs`.

mod analysis;
mod completion;
mod definition;
mod diagnostics;
mod docs;
mod documents;
mod hover;
mod server;
mod stdlib;
mod symbols;
mod uri;

pub use server::{run, serve};
