//! The built `terway-hybrid` binary run as a process, for the tests that
//! drive it from the outside (`cli_install.rs`, `cli_offline.rs`,
//! `cli_secrets.rs`). The in-process runs on a fake API live in `fake_api`.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_terway-hybrid");

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn of(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the binary with no kubeconfig around (KUBECONFIG points nowhere,
/// HOME is empty), `env` added, and `stdin` written (closed when `None`).
pub fn run_bin_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
    let home = tempfile::tempdir().expect("a temp HOME");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the terway-hybrid binary runs");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    Run::of(child.wait_with_output().expect("the binary finishes"))
}
