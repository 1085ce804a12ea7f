//! A temporary directory standing in for a node's root filesystem.

use std::path::{Component, Path, PathBuf};

/// A fake node root (what the agent gets as `--host-root`), removed on drop.
pub struct HostRoot {
    dir: tempfile::TempDir,
}

impl HostRoot {
    pub fn new() -> HostRoot {
        let dir = tempfile::Builder::new()
            .prefix("thtest-hostroot-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary host root: {e}"));
        HostRoot { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` at `rel` (e.g. `"etc/cni/net.d/10-flannel.conflist"`),
    /// creating parent directories.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.resolve(rel);
        if let Some(parent) = path.parent() {
            create_dirs(parent);
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Creates the directory `rel` (and parents) and returns its absolute path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.resolve(rel);
        create_dirs(&path);
        path
    }

    /// Joins `rel` under the root, refusing paths that would escape it: a test
    /// that wrote to the real `/etc` by mistake could break the machine.
    fn resolve(&self, rel: &str) -> PathBuf {
        let rel_path = Path::new(rel);
        assert!(
            rel_path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
            "HostRoot paths must be relative and stay inside the root, got {rel:?}"
        );
        self.dir.path().join(rel_path)
    }
}

impl Default for HostRoot {
    fn default() -> Self {
        HostRoot::new()
    }
}

fn create_dirs(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("cannot create directory {}: {e}", path.display()));
}
