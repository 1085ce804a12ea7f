//! Hostile input on the real binary: endless files, FIFOs fed forever,
//! 20 MB of whitespace, 100,000 nesting levels, a dump that is `42`, 20,000
//! nodes, escape sequences in what the cluster says. Each test asserts the
//! bound: the command returns within a generous deadline, with exit 2 and
//! the file and position named, or with printable output.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_terway-hybrid");
/// Generous: a debug build on a loaded 2-core machine. What it guards
/// against takes minutes or never ends.
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs the binary; `feed` writes its stdin (on a thread of its own, for
/// as long as it likes). Fails the test when the deadline passes.
fn run(args: &[&str], feed: Option<Box<dyn FnOnce(std::process::ChildStdin) + Send>>) -> Run {
    let home = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .stdin(if feed.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the terway-hybrid binary runs");
    if let (Some(feed), Some(stdin)) = (feed, child.stdin.take()) {
        std::thread::spawn(move || feed(stdin));
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            // Only the child this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("terway-hybrid {args:?} did not return within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    Run { code: status.code(), stdout: out.join().unwrap(), stderr: err.join().unwrap(), took }
}

/// Writes zeros into `w` until the reader goes away.
fn forever(mut w: impl Write) {
    let chunk = vec![b'A'; 64 * 1024];
    while w.write_all(&chunk).is_ok() {}
}

/// A FIFO at `path`, fed forever by a thread once a reader opens it.
fn endless_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
            forever(f);
        }
    });
}

fn key_file(dir: &Path) -> String {
    let p = dir.join("id");
    std::fs::write(&p, "LTAI5tAbCdEfGhIjKlMnOpQr\n").unwrap();
    p.display().to_string()
}

#[test]
fn an_endless_key_file_is_refused_at_4_kib_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let id = key_file(dir.path());
    let fifo = dir.path().join("secret.fifo");
    endless_fifo(&fifo);
    let fifo = fifo.display().to_string();
    for endless in ["/dev/zero", fifo.as_str()] {
        let args = ["ram-secret", "create", "--access-key-id-file", &id, "--access-key-secret-file", endless];
        let r = run(&args, None);
        assert_eq!(r.code, Some(2), "{r}");
        let expected = format!(
            "cannot read the access-key-secret file {endless}: larger than 4 KiB (the limit for a key file)"
        );
        assert!(r.stderr.contains(&expected), "{r}");
    }
    // Standard input fed forever.
    let args = ["ram-secret", "create", "--access-key-id-file", &id, "--access-key-secret-file", "-"];
    let r = run(&args, Some(Box::new(forever)));
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("the access-key-secret from stdin: larger than 4 KiB"), "{r}");
}

#[test]
fn an_endless_kubeconfig_is_refused_at_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kubeconfig.fifo");
    endless_fifo(&fifo);
    for endless in [PathBuf::from("/dev/zero"), fifo] {
        let path = endless.display().to_string();
        let r = run(&["--kubeconfig", &path, "preflight"], None);
        assert_eq!(r.code, Some(2), "{r}");
        let expected =
            format!("cannot read kubeconfig {path}: larger than 16 MiB (the limit for a kubeconfig)");
        assert!(r.stderr.contains(&expected), "{r}");
    }
}

/// `$KUBECONFIG` is read by kube itself, whole: a device, a FIFO or a huge
/// file there is refused before it is opened.
#[test]
fn a_kubeconfig_from_the_environment_is_checked_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kubeconfig.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo");
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(terway_hybrid_controller::cli::limits::KUBECONFIG_MAX + 1)
        .unwrap();
    for (path, problem) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (big, "larger than 16 MiB (the limit for a kubeconfig)"),
    ] {
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(["preflight"])
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("KUBECONFIG", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot read kubeconfig {}: {problem}", path.display())),
            "{stderr}"
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    }
}

#[test]
fn a_dump_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("dump.fifo");
    endless_fifo(&fifo);
    for path in [PathBuf::from("/dev/zero"), fifo] {
        let path = path.display().to_string();
        let r = run(&["preflight", "--from-dump", &path], None);
        assert_eq!(r.code, Some(2), "{r}");
        assert!(r.stderr.contains(&format!("{path}: not a regular file or directory")), "{r}");
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bgp-pass").join(name)
}

/// Linear: 20 MB of whitespace before a dump is read in well under the
/// deadline (it took minutes when each chunk rescanned all before it).
#[test]
fn twenty_megabytes_of_whitespace_before_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    for (file, blank) in [("nodes.json", " \n\t\r"), ("config.yaml", " \n")] {
        // Tabs cannot start a YAML token; JSON takes all four.
        let blank = blank.repeat(20 * 1024 * 1024 / blank.len());
        let text = std::fs::read_to_string(example(file)).unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{blank}{text}")).unwrap();
        let r = run(&["preflight", "--from-dump", &path.display().to_string(), "-o", "json"], None);
        // A dump of one kind: the preflight runs (and fails: no reports).
        assert!(matches!(r.code, Some(0 | 1)), "{file}: {r}");
        assert!(r.took < Duration::from_secs(20), "{file}: {r}");
        eprintln!("{file} after 20 MiB of whitespace: {:?}", r.took);
    }
}

#[test]
fn a_hundred_thousand_yaml_nesting_levels_are_refused_before_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    let depth = 100_000;
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: n}}\nspec: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
    )
    .unwrap();
    let r = run(&["preflight", "--from-dump", &path.display().to_string()], None);
    assert_eq!(r.code, Some(2), "{r}");
    let expected = format!(
        "{}: line 4 column 107: YAML collections nested deeper than 100 levels (the limit)",
        path.display()
    );
    assert!(r.stderr.contains(&expected), "{r}");
    assert!(r.took < Duration::from_secs(10), "{r}");
}

#[test]
fn a_dump_that_is_no_cluster_is_exit_2_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let found = "expected a Kubernetes object (a mapping with apiVersion and kind), found";
    let cases = [
        ("n.json", "42", format!("document 1: {found} a number at line 1 column 1")),
        ("s.yaml", "\"a string\"", format!("document 1: {found} a string at line 1 column 1")),
        (
            "e.json",
            "  {}",
            format!("document 1: {found} a mapping without a string apiVersion and kind at line 1 column 3"),
        ),
        (
            "e.yaml",
            "{}",
            format!("document 1: {found} a mapping without a string apiVersion and kind at line 1 column 1"),
        ),
        (
            "nameless.yaml",
            "apiVersion: v1\nkind: Node\nstatus: {}\n",
            "document 1: Node: metadata.name: missing (every Kubernetes object has one)".to_owned(),
        ),
        (
            "dup.yaml",
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a\n  name: b\n",
            "document 1: metadata: duplicate key \"name\"".to_owned(),
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        for cmd in [["preflight"], ["status"]] {
            let r = run(&[cmd[0], "--from-dump", &path.display().to_string()], None);
            assert_eq!(r.code, Some(2), "{file}: {r}");
            let expected = format!("error: cannot read the dump: {}: {expected}", path.display());
            assert!(r.stderr.contains(&expected), "{file}: {expected}\n{r}");
        }
    }
}

/// `status` on 20,000 nodes: one gate lookup per node in a set, not a scan
/// of every node per node.
#[test]
fn status_of_twenty_thousand_nodes() {
    let nodes: Vec<Value> = (0..20_000)
        .map(|i| {
            let mut labels = json!({"alibabacloud.com/external": if i % 2 == 0 { "true" } else { "false" }});
            if i % 4 == 0 {
                labels["terway-hybrid.io/terway-gate"] = json!("open");
            }
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("node-{i:05}"), "uid": format!("uid-{i}"), "labels": labels}})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes.json");
    std::fs::write(&path, json!({"apiVersion": "v1", "kind": "List", "items": nodes}).to_string()).unwrap();
    let r = run(&["status", "--from-dump", &path.display().to_string(), "-o", "json"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let status: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(status["nodes"].as_array().unwrap().len(), 20_000);
    assert_eq!(status["counts"]["gated"], 5_000);
    assert!(r.took < Duration::from_secs(15), "took {:?}", r.took);
    eprintln!("status of 20,000 nodes: {:?}", r.took);
}

/// Node names, kernel versions and the reasons and messages of reports
/// carry escape sequences; text output shows them, escaped.
#[test]
fn escape_sequences_from_the_cluster_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.yaml", "daemonsets.json", "pods.json"] {
        std::fs::copy(example(file), dir.path().join(file)).unwrap();
    }
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}";
    let mut nodes: Value =
        serde_json::from_str(&std::fs::read_to_string(example("nodes.json")).unwrap()).unwrap();
    for n in nodes["items"].as_array_mut().unwrap() {
        n["status"]["nodeInfo"]["kernelVersion"] = json!(format!("3.10{evil}"));
    }
    let mut reports: Value =
        serde_json::from_str(&std::fs::read_to_string(example("nodenetworkreports.json")).unwrap()).unwrap();
    for r in reports["items"].as_array_mut().unwrap() {
        for c in r["status"]["checks"].as_array_mut().unwrap() {
            c["status"] = json!("fail");
            c["reason"] = json!(format!("Bad{evil}"));
            c["message"] = json!(format!("line\n[PASS Forged] {evil}"));
        }
    }
    // A node named with an escape sequence (no API server would take it; a dump can hold it).
    let mut odd = nodes["items"][0].clone();
    odd["metadata"]["name"] = json!(format!("node{evil}"));
    odd["metadata"]["uid"] = json!("uid-odd");
    nodes["items"].as_array_mut().unwrap().push(odd);
    std::fs::write(dir.path().join("nodes.json"), nodes.to_string()).unwrap();
    std::fs::write(dir.path().join("nodenetworkreports.json"), reports.to_string()).unwrap();
    let d = dir.path().display().to_string();
    for args in [
        vec!["preflight", "--from-dump", &d],
        vec!["status", "--from-dump", &d],
        vec!["install", "--dry-run", "--from-dump", &d],
        vec!["ram-secret", "check", "--from-dump", &d],
        vec!["fix", "cni-affinity", "--daemonset", "kube-system/calico-node", "--dry-run", "--from-dump", &d],
    ] {
        let r = run(&args, None);
        assert!(matches!(r.code, Some(0..=2)), "{args:?}: {r}");
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            let bad: Vec<char> =
                text.chars().filter(|&c| (c.is_control() && c != '\n') || c == '\u{202e}').collect();
            assert!(bad.is_empty(), "{args:?} {stream} carries {bad:?}:\n{text}");
            assert!(!text.lines().any(|l| l.starts_with("[PASS Forged]")), "{args:?}: a forged line\n{text}");
        }
        if args[0] == "preflight" {
            assert!(r.stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u{202e}"), "{r}");
        }
    }
}
