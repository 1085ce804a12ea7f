//! `scripts/control-plane up DIR --owner PID` leaves nothing running once
//! PID is gone, however it ended (here: SIGKILL, as a test binary that
//! aborts) and deletes etcd's data; `down` stops exactly what `up` started
//! (`--delete-data` deletes etcd's data only where `up` ran); `restart`
//! brings a component back with the same flags.
//!
//! `cargo test -p terway-hybrid-testkit --test control_plane_lifecycle`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use terway_hybrid_testkit::control_plane::repo_root;
use terway_hybrid_testkit::wait_for_described;

fn script(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("scripts/control-plane"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/control-plane {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pids `up` recorded, with their component names.
fn recorded(dir: &Path) -> Vec<(u32, String)> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, name) = l.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_owned()))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose; /proc/PID/stat's third field says.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().map(|rest| !rest.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(false)
}

#[test]
fn an_owner_that_dies_takes_the_control_plane_with_it() {
    script(&["build"]);
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    script(&["up", dir_s, "--owner", &owner.id().to_string()]);
    let started = recorded(dir.path());
    let names: Vec<&str> = started.iter().map(|(_, n)| n.as_str()).collect();
    for component in
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "api-socket"]
    {
        assert!(names.contains(&component), "up started {component}: {names:?}");
    }
    assert!(started.iter().all(|(pid, _)| alive(*pid)), "all running after up: {started:?}");

    // restart: the API server comes back on the same port, ready.
    let before: Vec<u32> = started.iter().filter(|(_, n)| n == "kube-apiserver").map(|(p, _)| *p).collect();
    script(&["restart", dir_s, "kube-apiserver"]);
    let after = recorded(dir.path());
    let apiserver: Vec<u32> = after.iter().filter(|(_, n)| n == "kube-apiserver").map(|(p, _)| *p).collect();
    assert_eq!(apiserver.len(), 1, "{after:?}");
    assert_ne!(apiserver, before, "a new kube-apiserver process");
    assert!(!alive(before[0]), "the old kube-apiserver is gone");

    // The owner dies without a word: everything stops within seconds.
    owner.kill().unwrap();
    owner.wait().unwrap();
    wait_for_described(
        "every component to stop after its owner died",
        Duration::from_secs(30),
        || after.iter().all(|(pid, _)| !alive(*pid)).then_some(()),
        || after.iter().filter(|(pid, _)| alive(*pid)).cloned().collect::<Vec<_>>(),
    );
    // Then etcd's data goes (a 64 MiB WAL for each test binary with a
    // cluster, every run) and the logs a failure is read with stay.
    let etcd = dir.path().join("etcd");
    wait_for_described(
        "etcd's data to be deleted after its owner died",
        Duration::from_secs(30),
        || (!etcd.exists()).then_some(()),
        || format!("{} still exists", etcd.display()),
    );
    for kept in ["kube-apiserver.log", "etcd.log", "audit.log", "admin.kubeconfig"] {
        assert!(dir.path().join(kept).is_file(), "{kept} is kept for reading a failure");
    }
}

#[test]
fn down_stops_exactly_what_up_started() {
    script(&["build"]);
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    // Before `up`, the directory is not one it started: --delete-data
    // refuses and deletes nothing, whatever is named etcd there.
    std::fs::create_dir(dir.path().join("etcd")).unwrap();
    let refused = Command::new(repo_root().join("scripts/control-plane"))
        .args(["down", dir_s, "--delete-data"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success(), "down --delete-data in a directory up did not start");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing deleted"), "{refused:?}");
    assert!(dir.path().join("etcd").is_dir());
    std::fs::remove_dir(dir.path().join("etcd")).unwrap();
    // A bystander process, as another control plane's would be.
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    script(&["up", dir_s]);
    let started = recorded(dir.path());
    assert!(!started.is_empty());
    script(&["down", dir_s]);
    assert!(started.iter().all(|(pid, _)| !alive(*pid)), "down left some running: {started:?}");
    assert!(alive(bystander.id()), "down killed a process it did not start");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert!(dir.path().join("etcd").is_dir(), "a plain down keeps etcd's data");
    // A second down is harmless, and with --delete-data deletes only that.
    script(&["down", dir_s, "--delete-data"]);
    assert!(!dir.path().join("etcd").exists(), "down --delete-data deleted etcd's data");
    assert!(dir.path().join("kube-apiserver.log").is_file(), "down --delete-data keeps the logs");
}
