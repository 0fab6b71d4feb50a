//! Source locations.
//!
//! One span type is used by every stage (lexer, AST, checked form,
//! diagnostics), so a location can travel from a token to an error message
//! without conversion.

use std::ops::Range;

/// A half-open byte range `start..end` into the policy source text.
///
/// INVARIANT: `start <= end`, and both lie on UTF-8 character boundaries of
/// the source the span was produced from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// A sub-span given relative to `self.start` (used to point inside a
    /// string literal).
    pub fn inner(self, relative: Range<usize>) -> Span {
        Span::new(self.start + relative.start, self.start + relative.end)
    }

    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }

    pub fn len(self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

impl From<Range<usize>> for Span {
    fn from(range: Range<usize>) -> Span {
        Span::new(range.start, range.end)
    }
}

/// Maps byte offsets to 1-based line and column numbers.
///
/// Columns count Unicode scalar values (like codespan-reporting does), so
/// the numbers printed in the terminal output and in JSON agree.
pub struct LineIndex<'src> {
    source: &'src str,
    line_starts: Vec<usize>,
}

impl<'src> LineIndex<'src> {
    pub fn new(source: &'src str) -> LineIndex<'src> {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex {
            source,
            line_starts,
        }
    }

    /// 1-based `(line, column)` of a byte offset. Offsets past the end or
    /// inside a character are clamped rather than panicking.
    pub fn line_column(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let line_start = self.line_starts[line];
        let column = self
            .source
            .get(line_start..offset)
            .map_or(offset - line_start, |text| text.chars().count());
        (saturate(line + 1), saturate(column + 1))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_columns_are_one_based() {
        let index = LineIndex::new("ab\ncé\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(2), (1, 3));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(6), (2, 3));
        assert_eq!(index.line_column(7), (3, 1));
        assert_eq!(index.line_column(100), (3, 1));
    }
}
