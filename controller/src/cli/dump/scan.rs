//! The hand-written JSON scanner, [`JsonStream`]: it cuts the file into
//! values, checking structure only (see there why it is not serde_json's).

use super::files::read_some;
use crate::cli::limits;
use std::io::{self, Read};

/// Ends a scalar (number, `true`, ...).
pub(super) fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' | b'}' | b']' | b'{' | b'[' | b'"')
}

#[derive(Debug)]
pub(super) enum StreamError {
    Io(io::Error),
    /// The file, or the object being read, is over its limit.
    TooLarge {
        what: &'static str,
        limit: u64,
    },
    /// `at`: a byte offset in the file.
    Syntax {
        what: &'static str,
        at: usize,
    },
}

/// Where the bytes the stream moves past are copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Capture {
    Off,
    Whole,
    Item,
}

/// A forward-only JSON scanner over a reader: it finds where values end
/// (checking only structure) and copies the bytes it passes into `whole` or
/// `item` while asked to. It tracks line and column for messages.
///
/// Kept for speed, measured (docs/benchmarks.md, the 10,000-node dump:
/// 142.7 MB, 40,003 List items; release build, median of 7 alternating
/// runs): cutting the items out takes 0.78 s here, and 1.31 s with
/// serde_json's reader (`Deserializer::from_reader` over a 256 KB
/// `BufReader`, each item a `Box<RawValue>`), which reads byte by byte.
/// serde_json over the file in memory takes 0.48 s but holds all 143 MB.
/// It also gives the structural messages the tests assert (`mismatched
/// bracket`, `unterminated string`, each at the byte it concerns).
pub(super) struct JsonStream<R> {
    pub(super) reader: R,
    pub(super) buf: Box<[u8]>,
    /// The unread bytes are `buf[pos..end]`.
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) eof: bool,
    /// Offset of `buf[pos]` in the file. Lines are not counted here (see
    /// [`Ctx::locate`]).
    pub(super) offset: usize,
    pub(super) capture: Capture,
    pub(super) whole: Vec<u8>,
    pub(super) item: Vec<u8>,
    pub(super) stack: Vec<u8>,
}

impl<R: Read> JsonStream<R> {
    const CHUNK: usize = 256 * 1024;

    pub(super) fn new(reader: R) -> Self {
        JsonStream {
            reader,
            buf: vec![0; Self::CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            offset: 0,
            capture: Capture::Off,
            whole: Vec::new(),
            item: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Makes unread bytes available; false at the end of input.
    pub(super) fn fill(&mut self) -> Result<bool, StreamError> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        // Checked once per chunk: memory stays bounded by one object, and
        // time by the file's limit, whatever the file holds.
        if self.offset as u64 > limits::JSON_DUMP_MAX {
            return Err(StreamError::TooLarge { what: "a JSON dump", limit: limits::JSON_DUMP_MAX });
        }
        if self.whole.len().max(self.item.len()) > limits::JSON_OBJECT_MAX {
            return Err(StreamError::TooLarge {
                what: "one object of a JSON dump",
                limit: limits::JSON_OBJECT_MAX as u64,
            });
        }
        let n = read_some(&mut self.reader, &mut self.buf).map_err(StreamError::Io)?;
        self.pos = 0;
        self.end = n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    pub(super) fn window(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    /// Moves past `n` unread bytes (at most those available).
    pub(super) fn advance(&mut self, n: usize) {
        let end = (self.pos + n).min(self.end);
        let Some(passed) = self.buf.get(self.pos..end) else {
            return;
        };
        match self.capture {
            Capture::Off => {}
            Capture::Whole => self.whole.extend_from_slice(passed),
            Capture::Item => self.item.extend_from_slice(passed),
        }
        self.offset += passed.len();
        self.pos = end;
    }

    pub(super) fn peek(&mut self) -> Result<Option<u8>, StreamError> {
        Ok(if self.fill()? { self.window().first().copied() } else { None })
    }

    pub(super) fn syntax(&self, what: &'static str) -> StreamError {
        StreamError::Syntax { what, at: self.offset }
    }

    pub(super) fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), StreamError> {
        if self.peek()? != Some(byte) {
            return Err(self.syntax(what));
        }
        self.advance(1);
        Ok(())
    }

    pub(super) fn skip_ws(&mut self) -> Result<(), StreamError> {
        while self.fill()? {
            let window = self.window();
            let found = window.iter().position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
            let n = found.unwrap_or(window.len());
            self.advance(n);
            if found.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// At `"`: moves past the closing quote.
    pub(super) fn string(&mut self) -> Result<(), StreamError> {
        let start = self.offset;
        let unterminated = StreamError::Syntax { what: "unterminated string", at: start };
        self.advance(1);
        loop {
            if !self.fill()? {
                return Err(unterminated);
            }
            let window = self.window();
            match window.iter().position(|&b| b == b'"' || b == b'\\') {
                None => {
                    let n = window.len();
                    self.advance(n);
                }
                Some(k) => {
                    let quote = window.get(k) == Some(&b'"');
                    self.advance(k + 1);
                    if quote {
                        return Ok(());
                    }
                    // An escape: the escaped byte cannot end the string.
                    if !self.fill()? {
                        return Err(unterminated);
                    }
                    self.advance(1);
                }
            }
        }
    }

    /// Moves past one value.
    pub(super) fn value(&mut self) -> Result<(), StreamError> {
        match self.peek()? {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => self.container(),
            Some(_) => self.scalar(),
            None => Err(self.syntax("unexpected end of input")),
        }
    }

    pub(super) fn scalar(&mut self) -> Result<(), StreamError> {
        let start = self.offset;
        let mut any = false;
        while self.fill()? {
            let window = self.window();
            let found = window.iter().position(|&b| is_delimiter(b));
            let n = found.unwrap_or(window.len());
            any |= n > 0;
            self.advance(n);
            if found.is_some() {
                break;
            }
        }
        if any {
            Ok(())
        } else {
            Err(StreamError::Syntax { what: "expected a value", at: start })
        }
    }

    pub(super) fn container(&mut self) -> Result<(), StreamError> {
        self.stack.clear();
        loop {
            if !self.fill()? {
                return Err(self.syntax("unexpected end of input"));
            }
            let window = self.window();
            let Some(k) = window.iter().position(|&b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']')) else {
                let n = window.len();
                self.advance(n);
                continue;
            };
            let b = window.get(k).copied().unwrap_or_default();
            self.advance(k);
            match b {
                b'"' => self.string()?,
                b'{' => {
                    self.stack.push(b'}');
                    self.advance(1);
                }
                b'[' => {
                    self.stack.push(b']');
                    self.advance(1);
                }
                _ => {
                    if self.stack.pop() != Some(b) {
                        return Err(self.syntax("mismatched bracket"));
                    }
                    self.advance(1);
                    if self.stack.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
