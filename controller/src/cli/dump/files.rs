//! Which files a dump is, and reading them.

use super::DumpError;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub(super) fn too_large(path: &Path, what: &'static str, limit: u64) -> DumpError {
    DumpError::TooLarge { path: path.to_path_buf(), what, limit }
}

pub(super) fn read_error(path: &Path, source: io::Error) -> DumpError {
    if source.kind() == io::ErrorKind::NotFound {
        DumpError::NotFound { path: path.to_path_buf() }
    } else {
        DumpError::Read { path: path.to_path_buf(), source }
    }
}

/// The files to read: `path` itself, or the dump files below it in path order.
pub(super) fn collect_files(path: &Path) -> Result<Vec<PathBuf>, DumpError> {
    let meta = fs::metadata(path).map_err(|e| read_error(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(DumpError::NotAFile { path: path.to_path_buf() });
    }
    let mut files = Vec::new();
    // An explicit stack, so deep trees cannot exhaust the call stack.
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| read_error(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_error(&dir, e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let child = entry.path();
            let file_type = entry.file_type().map_err(|e| read_error(&child, e))?;
            if file_type.is_dir() {
                dirs.push(child);
            } else if (file_type.is_file() || (file_type.is_symlink() && child.is_file()))
                && has_dump_extension(&child)
            {
                // Symlinked files are read; symlinked directories are not
                // followed, so a link cycle cannot loop.
                files.push(child);
            }
        }
    }
    files.sort();
    Ok(files)
}

pub(super) fn has_dump_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

pub(super) fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
