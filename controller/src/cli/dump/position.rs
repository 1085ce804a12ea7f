//! Where the reader stands ([`Ctx`]), and messages with line and column.

use super::files::{read_some, too_large};
use super::kinds::Header;
use super::scan::StreamError;
use super::{DumpError, Location};
use serde::de::IgnoredAny;
use std::fmt;
use std::fs::File;
use std::path::Path;

/// A position in a file: 1-based line, 1-based byte column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    pub(super) const START: Pos = Pos { line: 1, column: 1 };

    /// The position after `bytes`, read from here.
    pub(super) fn after(self, bytes: &[u8]) -> Pos {
        match bytes.iter().rposition(|&b| b == b'\n') {
            None => Pos { line: self.line, column: self.column + bytes.len() },
            Some(last) => Pos {
                line: self.line + bytes.iter().filter(|&&b| b == b'\n').count(),
                column: bytes.len() - last,
            },
        }
    }

    /// A serde_json position, counted from the start of the slice it was
    /// given (which starts here), made absolute.
    pub(super) fn plus(self, line: usize, column: usize) -> Pos {
        if line <= 1 {
            Pos { line: self.line, column: self.column + column.saturating_sub(1) }
        } else {
            Pos { line: self.line + line - 1, column }
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Where the reader stands, for errors.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    /// The whole file when it is YAML, re-read for positioned messages; empty for JSON.
    pub(super) yaml: &'a [u8],
    pub(super) document: usize,
    pub(super) item: Option<Item>,
}

#[derive(Clone, Copy)]
pub(super) struct Item {
    pub(super) index: usize,
    /// The document itself is an array rather than a List object.
    pub(super) root_array: bool,
}

impl Item {
    pub(super) fn label(self) -> String {
        if self.root_array {
            format!("[{}]", self.index)
        } else {
            format!("items[{}]", self.index)
        }
    }
}

impl Ctx<'_> {
    pub(super) fn error(&self, header: Option<&Header>, message: String) -> DumpError {
        DumpError::Parse {
            file: self.file.to_path_buf(),
            location: Location {
                document: self.document,
                item: self.item.map(Item::label),
                object: header.map(Header::label),
            },
            message,
        }
    }

    pub(super) fn stream_error(&self, e: StreamError) -> DumpError {
        match e {
            StreamError::Io(source) => DumpError::Read { path: self.file.to_path_buf(), source },
            StreamError::TooLarge { what, limit } => too_large(self.file, what, limit),
            StreamError::Syntax { what, at } => {
                self.error(None, format!("{what} at {}", self.locate(at, 1, 1)))
            }
        }
    }

    /// `line L column C` of a position given as serde_json gives it: line and
    /// column within a JSON slice that starts at byte `offset` of the file.
    ///
    /// Lines are found by reading the file again up to `offset`: errors are
    /// rare, and counting lines on the way would slow every load.
    pub(super) fn locate(&self, offset: usize, line: usize, column: usize) -> String {
        match self.position_of(offset) {
            Some(start) => start.plus(line, column).to_string(),
            None => format!("line {line} column {column} of the value at byte {offset}"),
        }
    }

    pub(super) fn position_of(&self, offset: usize) -> Option<Pos> {
        let mut reader = File::open(self.file).ok()?;
        let mut buf = vec![0; 64 * 1024];
        let (mut pos, mut left) = (Pos::START, offset);
        while left > 0 {
            let n = read_some(&mut reader, &mut buf).ok()?;
            let chunk = buf.get(..n.min(left)).filter(|c| !c.is_empty())?;
            pos = pos.after(chunk);
            left -= chunk.len();
        }
        Some(pos)
    }
}

pub(super) fn validate_json(bytes: &[u8], ctx: &Ctx<'_>, at: usize) -> Result<(), String> {
    serde_json::from_slice::<IgnoredAny>(bytes).map(drop).map_err(|e| json_message(&e, ctx, at))
}

/// A serde_json message about the JSON at byte `at`, with its position made
/// absolute in the file.
pub(super) fn json_message(e: &serde_json::Error, ctx: &Ctx<'_>, at: usize) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let bare = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
    format!("{bare} at {}", ctx.locate(at, e.line(), e.column()))
}

/// The message for a document or List item that is no Kubernetes object.
pub(super) fn not_an_object(what: &str, at: &str) -> String {
    let found = if what == "a mapping" { "a mapping without a string apiVersion and kind" } else { what };
    format!("expected a Kubernetes object (a mapping with apiVersion and kind), found {found} at {at}")
}
