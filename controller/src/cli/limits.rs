//! Bounds on what the CLI and the dump reader accept from files
//! (docs/contracts.md §9, docs/troubleshooting.md "Limits"). A file given on
//! the command line may be anything: a FIFO fed forever, /dev/zero, a
//! 100,000-level YAML. Every read stops at a documented size and says which
//! file was too large.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `ram-secret create --access-key-*-file`: an AccessKey is tens of bytes.
pub const KEY_FILE_MAX: u64 = 4 * 1024;
/// `--kubeconfig FILE`: embedded certificates make a few KiB per cluster.
pub const KUBECONFIG_MAX: u64 = 16 * 1024 * 1024;
/// A YAML dump file: read whole (the YAML parser needs it so). Larger dumps
/// are JSON, which is streamed.
pub const YAML_DUMP_MAX: u64 = 256 * 1024 * 1024;
/// A JSON dump file, streamed.
pub const JSON_DUMP_MAX: u64 = 8 * 1024 * 1024 * 1024;
/// One object of a JSON dump (a List item or a top-level object), held whole
/// while it is decoded.
pub const JSON_OBJECT_MAX: usize = 64 * 1024 * 1024;
/// How long a file argument may take to read. A regular file takes
/// milliseconds; a FIFO nobody writes to blocks open(2) forever.
const FILE_READ_DEADLINE: Duration = Duration::from_secs(60);
/// Nesting of YAML flow collections (`[`, `{`), checked before the YAML
/// parser sees the file: libyaml takes time quadratic in it. Kubernetes
/// objects nest about 15 deep; yaml_serde refuses more than 128 anyway.
pub const YAML_NESTING_MAX: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: larger than {} (the limit for {what})", path.display(), size(*limit))]
    TooLarge { path: PathBuf, what: &'static str, limit: u64 },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: nothing to read within {}s (a FIFO or device nobody writes to?)", path.display(), after.as_secs())]
    TimedOut { path: PathBuf, after: Duration },
}

/// `4 KiB`, `256 MiB`, `8 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// Reads `reader` to its end, but no more than `limit` bytes: one byte more
/// is an error, so an endless input returns after `limit + 1` bytes.
pub fn read_capped(
    reader: impl Read,
    limit: u64,
    path: &Path,
    what: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), what, limit });
    }
    Ok(bytes)
}

/// [`read_capped`] on a file by path, within [`FILE_READ_DEADLINE`].
pub fn read_file_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    read_file_within(path, limit, what, FILE_READ_DEADLINE)
}

/// [`read_file_capped`] with its deadline given. The open and the read run
/// on a thread of their own: nothing bounds a blocked open(2) of a FIFO, so
/// past the deadline the caller gets an error and the thread is left behind
/// (the CLI exits on that error, which ends it).
fn read_file_within(
    path: &Path,
    limit: u64,
    what: &'static str,
    deadline: Duration,
) -> Result<Vec<u8>, ReadError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let read = std::fs::File::open(&owned)
            .map_err(|source| ReadError::Io { path: owned.clone(), source })
            .and_then(|file| read_capped(file, limit, &owned, what));
        let _ = tx.send(read);
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| Err(ReadError::TimedOut { path: path.to_path_buf(), after: deadline }))
}

/// Where YAML flow collections (`[`, `{`) first nest deeper than `limit`:
/// the byte offset of the opening bracket, or None.
///
/// One linear pass that follows just enough of YAML to find flow
/// collections: quoted scalars and comments are skipped, block scalars
/// (`|`, `>`) are skipped by their indentation, and in block context a
/// bracket opens a collection only where a value can start (after a space
/// or at the start of a line), so `a[1]` in a plain scalar does not count.
pub fn yaml_nesting_exceeds(bytes: &[u8], limit: usize) -> Option<usize> {
    let to_eol = |i: usize| bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| i + n);
    let mut depth = 0usize;
    let mut i = 0;
    // The byte before `i` lets a value (a bracket, a quote) or a comment
    // begin: whitespace, the start of input, or in a flow collection `,[{:`.
    let mut boundary = true;
    // Inside a block scalar: the indentation its content lines exceed.
    let mut block_scalar: Option<usize> = None;
    let mut line_start = true;
    while i < bytes.len() {
        if std::mem::take(&mut line_start) {
            if let Some(parent) = block_scalar {
                let indent = bytes[i..].iter().take_while(|&&b| b == b' ').count();
                let blank = matches!(bytes.get(i + indent), None | Some(b'\n' | b'\r'));
                if blank || indent > parent {
                    i = to_eol(i) + 1;
                    line_start = true;
                    continue;
                }
                block_scalar = None;
            }
        }
        let b = bytes[i];
        match b {
            b'\n' => {
                line_start = true;
                boundary = true;
                i += 1;
                continue;
            }
            b'#' if boundary => {
                i = to_eol(i);
                continue;
            }
            b'"' | b'\'' if boundary => {
                i = skip_quoted(bytes, i);
                boundary = false;
                continue;
            }
            b'[' | b'{' if depth > 0 || boundary => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' if depth > 0 => depth -= 1,
            b'|' | b'>' if depth == 0 && boundary => {
                // Its content is indented more than the line's node
                // (`key: |`, `- key: |`: the column of `key`).
                let line = bytes[..i].iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1);
                block_scalar = Some(bytes[line..i].iter().take_while(|&&b| b == b' ' || b == b'-').count());
                i = to_eol(i);
                continue;
            }
            _ => {}
        }
        boundary = matches!(b, b' ' | b'\t' | b'\r') || (depth > 0 && matches!(b, b',' | b'[' | b'{' | b':'));
        i += 1;
    }
    None
}

/// Past the quoted scalar that starts at `start` (or to the end of input).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b if b == quote => {
                // `''` is a quote inside a single-quoted scalar.
                if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO that nobody opens for writing: open(2) would block forever.
    #[test]
    fn a_fifo_without_a_writer_ends_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let start = std::time::Instant::now();
        let err =
            read_file_within(&fifo, KEY_FILE_MAX, "a key file", Duration::from_millis(500)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert!(matches!(err, ReadError::TimedOut { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("{}: nothing to read within", fifo.display())), "{err}");
    }

    #[test]
    fn an_endless_input_stops_one_byte_past_the_limit() {
        let path = Path::new("/dev/zero");
        let err = read_file_capped(path, KEY_FILE_MAX, "a key file").unwrap_err();
        assert_eq!(err.to_string(), "/dev/zero: larger than 4 KiB (the limit for a key file)");
        let ok = read_capped(&b"abc"[..], 3, path, "x").unwrap();
        assert_eq!(ok, b"abc");
        assert!(read_capped(&b"abcd"[..], 3, path, "x").is_err());
    }

    #[test]
    fn yaml_nesting_is_found_in_one_pass() {
        let deep = |n: usize| format!("spec: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert_eq!(yaml_nesting_exceeds(deep(100).as_bytes(), 100), None);
        assert_eq!(yaml_nesting_exceeds(deep(101).as_bytes(), 100), Some(6 + 100));
        let flow_map = format!("a: {}1{}", "{b: ".repeat(101), "}".repeat(101));
        assert!(yaml_nesting_exceeds(flow_map.as_bytes(), 100).is_some());
        // Brackets in plain, quoted and block scalars and comments are text.
        let brackets = "[".repeat(500);
        for text in [
            format!("a: x{brackets}\n"),
            format!("a: \"{brackets}\"\nb: '{brackets}'\n"),
            format!("a: 1 # {brackets}\n"),
            format!("a: |\n  {brackets}\n\n  {brackets}\nb: 1\n"),
            format!("- key: >-\n    {brackets}\n  other: 1\n"),
            format!("a: ['{brackets}', \"{brackets}\", b]\n"),
        ] {
            assert_eq!(yaml_nesting_exceeds(text.as_bytes(), 100), None, "{text}");
        }
        // A block scalar ends where its indentation does.
        let after = format!("- key: |\n    text\n  other: {}\n", "[".repeat(101));
        assert!(yaml_nesting_exceeds(after.as_bytes(), 100).is_some());
    }

    #[test]
    fn sizes_are_said_in_their_unit() {
        assert_eq!(size(KEY_FILE_MAX), "4 KiB");
        assert_eq!(size(YAML_DUMP_MAX), "256 MiB");
        assert_eq!(size(JSON_DUMP_MAX), "8 GiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
