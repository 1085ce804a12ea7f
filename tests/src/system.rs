//! Preconditions (root, installed programs) and running commands that must succeed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Directories searched in addition to `PATH`: root's tools live in the
/// sbin directories, which a non-login `PATH` often lacks.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Fails loudly unless running as root with `ip` (iproute2) available.
///
/// The namespace tests cannot run otherwise, and a silent skip would pass CI
/// without testing anything.
pub fn require_root() {
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "these tests create network namespaces and must run as root (effective uid is {euid})"
    );
    require_program("ip", "iproute2");
}

/// Where `name` would be executed from: the first match on `PATH`, then the
/// sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Like [`find_program`], but panics naming the Debian package to install.
pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed; install it with \
             `DEBIAN_FRONTEND=noninteractive apt-get install -y {debian_package}`"
        )
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Runs `cmd` to completion and panics with the command line, status, stdout
/// and stderr unless it exits successfully.
pub(crate) fn run_checked(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    if !output.status.success() {
        panic!("{}", failure_message(cmd, &output));
    }
    output
}

pub(crate) fn failure_message(cmd: &Command, output: &Output) -> String {
    format!(
        "{} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe(cmd),
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end(),
    )
}

/// The command line as a shell user would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    format!("`{line}`")
}
