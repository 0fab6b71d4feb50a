//! Open documents: their text as the editor has it, and positions.
//!
//! The protocol counts a position's character in UTF-16 code units unless the client agrees to
//! UTF-8 (see `server.rs`); the compiler counts bytes. [`Lines`] converts both ways, clamping
//! anything out of range, since a position from a client is never trusted to be valid.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};

use crate::diag::{Diagnostic, File};
use crate::span::Span;

/// How a position's `character` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

/// Line starts of a text, for position conversions.
#[derive(Clone, Debug)]
pub struct Lines {
    starts: Vec<usize>,
    encoding: Encoding,
}

impl Lines {
    pub fn new(text: &str, encoding: Encoding) -> Lines {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { starts, encoding }
    }

    /// The byte offset of a position: past the end of its line is the line's end, past the
    /// last line the end of the text, inside a character its start.
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else {
            return text.len();
        };
        let line_end = self
            .starts
            .get(position.line as usize + 1)
            .map_or(text.len(), |&next| next - 1);
        let line = text.get(start..line_end).unwrap_or_default();
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= position.character {
                return start + i;
            }
            units += self.width(c);
        }
        line_end
    }

    /// The position of a byte offset (clamped into the text, onto a character boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character = text
            .get(start..offset)
            .unwrap_or_default()
            .chars()
            .map(|c| self.width(c))
            .sum();
        Position::new(line as u32, character)
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(
            self.position(text, span.start),
            self.position(text, span.end),
        )
    }

    pub fn span(&self, text: &str, range: Range) -> Span {
        let start = self.offset(text, range.start);
        Span::new(start, self.offset(text, range.end).max(start))
    }

    fn width(&self, c: char) -> u32 {
        match self.encoding {
            Encoding::Utf8 => c.len_utf8() as u32,
            Encoding::Utf16 => c.len_utf16() as u32,
        }
    }
}

/// An open document.
pub struct Document {
    pub text: String,
    pub version: i32,
    pub lines: Lines,
    /// What the front end reported for this version.
    pub front: Vec<Diagnostic>,
    /// What lowering reported for the last version it finished, spans moved along with the
    /// edits made since, so they stay under the text they are about until lowering reports
    /// on the current version (see `analysis.rs`).
    pub lowered: Vec<Diagnostic>,
}

impl Document {
    pub fn new(text: String, version: i32, encoding: Encoding) -> Document {
        Document {
            lines: Lines::new(&text, encoding),
            text,
            version,
            front: Vec::new(),
            lowered: Vec::new(),
        }
    }

    /// Applies the edits of one `didChange`, in order, as the protocol says.
    pub fn apply(&mut self, version: i32, changes: Vec<TextDocumentContentChangeEvent>) {
        for change in changes {
            let replaced = match change.range {
                Some(range) => self.lines.span(&self.text, range),
                None => Span::new(0, self.text.len()),
            };
            self.text.replace_range(replaced.range(), &change.text);
            self.lines = Lines::new(&self.text, self.lines.encoding);
            for d in &mut self.lowered {
                for label in std::iter::once(&mut d.primary).chain(&mut d.secondary) {
                    if label.file == File::Main {
                        label.span = moved(label.span, replaced, change.text.len());
                    }
                }
            }
        }
        self.version = version;
    }
}

/// Where `span` lies after `replaced` is replaced by `inserted` bytes: unchanged before it,
/// shifted after it, stretched over the new text where it overlapped.
fn moved(span: Span, replaced: Span, inserted: usize) -> Span {
    let new_end = replaced.start + inserted;
    let map = |offset: usize, end: bool| {
        if offset < replaced.start || (offset == replaced.start && !end) {
            offset
        } else if offset >= replaced.end {
            offset - replaced.end + new_end
        } else if end {
            new_end
        } else {
            replaced.start
        }
    };
    let start = map(span.start, false);
    Span::new(start, map(span.end, true).max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_or_utf8() {
        let text = "ab\nxé𝄞z\n";
        let utf16 = Lines::new(text, Encoding::Utf16);
        // `z` is at byte 3 + 1 + 2 + 4 = 10; in UTF-16 at character 1 + 1 + 2 = 4.
        assert_eq!(utf16.position(text, 10), Position::new(1, 4));
        assert_eq!(utf16.offset(text, Position::new(1, 4)), 10);
        let utf8 = Lines::new(text, Encoding::Utf8);
        assert_eq!(utf8.position(text, 10), Position::new(1, 7));
        assert_eq!(utf8.offset(text, Position::new(1, 7)), 10);
        // Out of range: clamped.
        assert_eq!(utf16.offset(text, Position::new(0, 99)), 2);
        assert_eq!(utf16.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(utf16.position(text, 999), Position::new(2, 0));
        // Inside a character: its start.
        assert_eq!(utf16.position(text, 6), Position::new(1, 2));
    }

    #[test]
    fn edits_apply_in_order_and_move_old_spans() {
        let mut doc = Document::new("guard /a\n".to_string(), 1, Encoding::Utf16);
        doc.lowered
            .push(Diagnostic::warning("W0101", "m", Span::new(6, 8), "l"));
        let edit = |l0, c0, l1, c1, text: &str| TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(l0, c0), Position::new(l1, c1))),
            range_length: None,
            text: text.to_string(),
        };
        doc.apply(2, vec![edit(0, 0, 0, 0, "# c\n"), edit(1, 6, 1, 8, "/bc")]);
        assert_eq!(doc.text, "# c\nguard /bc\n");
        assert_eq!(doc.version, 2);
        assert_eq!(doc.lowered[0].primary.span, Span::new(10, 13));
        doc.apply(
            3,
            vec![TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: "x".to_string(),
            }],
        );
        assert_eq!(doc.text, "x");
        assert_eq!(doc.lowered[0].primary.span, Span::new(0, 1));
    }
}
