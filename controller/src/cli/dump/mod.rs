//! `--from-dump PATH`: Kubernetes objects saved by `kubectl get -o yaml|json`
//! (or `terway-hybrid dump`) read into a [`ClusterView`].
//!
//! PATH is a file (read whatever its extension) or a directory (every
//! `.yaml`/`.yml`/`.json` file below it, recursively, in path order, hidden
//! entries skipped). A file holds one object, a multi-document YAML stream,
//! one or more JSON values, or a `List` / typed `*List` whose items may lack
//! `apiVersion`/`kind` (then the list kind gives them: `NodeList` -> `Node`).
//! The format is told by content: JSON starts with `{` or `[`.
//!
//! Large JSON dumps (tens of thousands of objects, hundreds of MB) are the
//! case that matters, so JSON is streamed: the file is read once, in chunks, a
//! byte scanner cuts it into List items, and each item we keep is deserialized
//! straight from its own bytes. Neither the file nor a `serde_json::Value` tree
//! of it is ever held whole; memory is the view itself plus one item.
//!
//! Secret values never leave this module: only kube-system/alibaba-addon-secret
//! is looked at, it is reduced to [`SecretKeys`](crate::pure::view::SecretKeys) at
//! once, and errors about it name keys and positions, never contents.
//!
//! The parts, by job: `files` finds the files, `kinds` tells what an
//! object is and where the view keeps it, `position` says where in a file
//! something went wrong, `loader` puts objects into the view, `json` and
//! `scan` read JSON, `yaml` reads YAML, and `secrets` holds the
//! `<redacted:N>` format, written by `terway-hybrid dump` and read back here.

mod files;
mod json;
mod kinds;
mod loader;
mod position;
mod scan;
pub(crate) mod secrets;
#[cfg(test)]
mod tests;
mod yaml;

use crate::pure::view::ClusterView;
use loader::Loader;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where in a dump something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based index of the YAML document or top-level JSON value in the file.
    pub document: usize,
    /// The List item, as a path into the document (`items[3]`, 0-based like
    /// `jq '.items[3]'`), when the object is one.
    pub item: Option<String>,
    /// `Kind "namespace/name"`, when known.
    pub object: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = &self.item {
            write!(f, ": {item}")?;
        }
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not a regular file or directory", path.display())]
    NotAFile { path: PathBuf },
    #[error("no Kubernetes objects found in {}", path.display())]
    NoObjects { path: PathBuf },
    /// Over a size limit (crate::cli::limits).
    #[error("{}: larger than {} (the limit for {what})", path.display(), crate::cli::limits::size(*limit))]
    TooLarge { path: PathBuf, what: &'static str, limit: u64 },
    /// YAML flow collections nested deeper than [`crate::cli::limits::YAML_NESTING_MAX`].
    #[error("{}: {at}: YAML collections nested deeper than {limit} levels (the limit)", file.display())]
    TooDeep { file: PathBuf, at: String, limit: usize },
    /// `file: document 3: items[2]: Node "node-4": <parser message, with line and column>`.
    #[error("{}: {location}: {message}", file.display())]
    Parse { file: PathBuf, location: Location, message: String },
}

/// What a load read, kept, and passed over. Keys are `"<apiVersion> <kind>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Every file read, in the order read.
    pub files: Vec<PathBuf>,
    /// Distinct objects now in the view, per kind.
    pub loaded: BTreeMap<String, usize>,
    /// Objects the view does not use (other kinds, other ConfigMaps and
    /// Secrets). A document or item that is no object at all is an error.
    pub ignored: BTreeMap<String, usize>,
    /// Objects that replaced an earlier one with the same kind, namespace and
    /// name: the last one read wins.
    pub duplicates: BTreeMap<String, usize>,
}

impl LoadSummary {
    /// Every object seen, duplicates and ignored ones included.
    pub fn objects(&self) -> usize {
        [&self.loaded, &self.ignored, &self.duplicates].iter().flat_map(|m| m.values()).sum()
    }
}

/// Reads a dump file or directory into a [`ClusterView`].
pub fn load(path: &Path) -> Result<ClusterView, DumpError> {
    load_with_summary(path).map(|(view, _)| view)
}

/// [`load`], also saying what was read and what was passed over.
pub fn load_with_summary(path: &Path) -> Result<(ClusterView, LoadSummary), DumpError> {
    let files = files::collect_files(path)?;
    let mut loader = Loader::default();
    for file in files {
        loader.load_file(&file)?;
        loader.summary.files.push(file);
    }
    if loader.summary.objects() == 0 {
        return Err(DumpError::NoObjects { path: path.to_path_buf() });
    }
    Ok((loader.view, loader.summary))
}
