//! Go to definition: a list or macro to its definition (in the document or in a module), an
//! import to its module.

use std::path::PathBuf;

use super::stdlib::Library;
use super::symbols::{self, Origin, Target};
use crate::span::Span;
use crate::syntax::parser;

/// Where something is defined.
pub struct Place {
    /// `None`: in the document itself.
    pub path: Option<PathBuf>,
    pub span: Span,
    /// The text `span` indexes into (for positions in another file).
    pub text: String,
}

pub fn definition(text: &str, offset: usize, library: &Library) -> Option<Place> {
    let (target, _) = symbols::target_at(text, offset)?;
    match target {
        Target::Name(name) => {
            let (policy, _) = parser::parse(text);
            let scope = symbols::scope(text, &policy, library);
            let named = symbols::lookup(&scope, &name)?;
            match &named.origin {
                Origin::Here => Some(Place {
                    path: None,
                    span: named.def.name_span,
                    text: text.to_string(),
                }),
                Origin::Module { name, file } => Some(Place {
                    path: Some(library.path(name)?),
                    span: named.def.name_span,
                    text: file.text().to_string(),
                }),
            }
        }
        Target::Module(name) => Some(Place {
            path: Some(library.path(&name)?),
            span: Span::new(0, 0),
            text: String::new(),
        }),
        _ => None,
    }
}
