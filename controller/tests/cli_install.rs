//! `terway-hybrid install` with a stand-in `onectl` on PATH that records its
//! calls: nothing is run on a failing preflight or an overlay cluster, grant
//! then install on a passing one, and a failing or missing onectl stops it.

mod cli_bin;

use cli_bin::{run_bin_with, Run};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use terway_hybrid_testkit::example_dir;

const GRANT: &str = "ram-user grant --addon terway-eniip";
const INSTALL: &str = "addon install terway-eniip";

struct Onectl {
    dir: tempfile::TempDir,
    log: PathBuf,
}

/// A directory with an `onectl` script that appends its arguments to a log,
/// prints a line, and exits 3 when its arguments contain $ONECTL_FAIL_ON.
fn onectl() -> Onectl {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("onectl");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$*\" >> \"$ONECTL_LOG\"\necho \"onectl: did $*\"\n\
         if [ -n \"$ONECTL_FAIL_ON\" ]; then case \"$*\" in *\"$ONECTL_FAIL_ON\"*) echo 'onectl: boom' >&2; exit 3;; esac; fi\n\
         exit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("calls.log");
    Onectl { dir, log }
}

impl Onectl {
    fn run(&self, args: &[&str], fail_on: &str) -> Run {
        let path = format!("{}:/usr/bin:/bin", self.dir.path().display());
        run_bin_with(
            args,
            &[
                ("PATH", path.as_str()),
                ("ONECTL_LOG", &self.log.display().to_string()),
                ("ONECTL_FAIL_ON", fail_on),
            ],
            None,
        )
    }

    fn calls(&self) -> Vec<String> {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => vec![],
        }
    }
}

fn dump(name: &str) -> String {
    example_dir(name).display().to_string()
}

#[test]
fn a_failing_preflight_runs_nothing() {
    for name in ["bgp-fail", "host-network-fail"] {
        let o = onectl();
        let run = o.run(&["install", "--from-dump", &dump(name), "--yes"], "");
        assert_eq!(run.code, 1, "{name}: {run}");
        assert!(run.stdout.contains("The preflight fails: nothing was installed, nothing was run."), "{run}");
        assert!(run.stdout.contains("[ERROR "), "the failing checks are listed: {run}");
        assert!(!run.stdout.contains("[PASS "), "only the failing ones: {run}");
        assert_eq!(o.calls(), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn a_passing_preflight_grants_then_installs() {
    for name in ["bgp-pass", "host-network-pass"] {
        let o = onectl();
        // --force: the dumps are in Auto mode and no cluster is there to show
        // the gate enforced at admission (cluster_admission.rs tests that).
        let run = o.run(&["install", "--from-dump", &dump(name), "--yes", "--force"], "");
        assert_eq!(run.code, 0, "{name}: {run}");
        assert_eq!(o.calls(), vec![GRANT.to_owned(), INSTALL.to_owned()], "{name}");
        // onectl's output is shown, in order.
        let grant = run.stdout.find(&format!("onectl: did {GRANT}")).expect("grant output");
        let install = run.stdout.find(&format!("onectl: did {INSTALL}")).expect("install output");
        assert!(grant < install, "{run}");
        assert!(run.stdout.contains("Terway (terway-eniip) is installed"), "{run}");
    }
}

#[test]
fn a_failing_grant_stops_before_the_install() {
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("bgp-pass"), "--yes", "--force"], "grant");
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(o.calls(), vec![GRANT.to_owned()], "the install is not run");
    assert!(run.stderr.contains("onectl: boom"), "onectl's stderr is shown: {run}");
    assert!(
        run.stderr.contains(&format!(
            "error: `onectl {GRANT}` failed (exit status 3); the add-on was not installed"
        )),
        "{run}"
    );
    assert!(!run.stdout.contains("is installed"), "{run}");
}

#[test]
fn a_failing_install_fails() {
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("bgp-pass"), "--yes", "--force"], "addon install");
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(o.calls(), vec![GRANT.to_owned(), INSTALL.to_owned()]);
    assert!(run.stderr.contains(&format!("error: `onectl {INSTALL}` failed (exit status 3)")), "{run}");
}

#[test]
fn a_missing_onectl_is_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let path = format!("{}:/usr/bin:/bin", empty.path().display());
    let run = run_bin_with(
        &["install", "--from-dump", &dump("bgp-pass"), "--yes", "--force"],
        &[("PATH", path.as_str())],
        None,
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("onectl was not found on PATH"), "{run}");
}

#[test]
fn without_yes_and_without_a_terminal_it_refuses() {
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("bgp-pass"), "--force"], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("there is no terminal to ask whether to install Terway; pass --yes"),
        "{run}"
    );
    assert_eq!(o.calls(), Vec::<String>::new());
}

#[test]
fn dry_run_runs_nothing() {
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("bgp-pass"), "--dry-run"], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(&format!("onectl {GRANT}")) && run.stdout.contains(&format!("onectl {INSTALL}")),
        "{run}"
    );
    assert!(run.stdout.contains("dry run: nothing was run"), "{run}");
    // Without a cluster the gate cannot be shown enforced: the dry run says
    // the install would refuse.
    assert!(run.stdout.contains("install would refuse"), "{run}");
    assert_eq!(o.calls(), Vec::<String>::new());
}

#[test]
fn auto_mode_without_the_gate_enforced_refuses() {
    // The dump says Auto; no cluster answers (no kubeconfig), so nothing
    // shows the webhook would add the gate when the add-on creates Terway.
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("bgp-pass"), "--yes"], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("mode is Auto, but the Terway gate cannot be enforced"), "{run}");
    assert!(run.stderr.contains("docs/troubleshooting.md") && run.stderr.contains("--force"), "{run}");
    assert_eq!(o.calls(), Vec::<String>::new(), "nothing was run");
}

#[test]
fn an_overlay_cluster_needs_no_terway() {
    let o = onectl();
    let run = o.run(&["install", "--from-dump", &dump("overlay-pass"), "--yes"], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Terway is not needed"), "{run}");
    assert_eq!(o.calls(), Vec::<String>::new());
    // A failing overlay: still nothing to install, but the checks to fix are said (exit 1).
    let run = o.run(&["install", "--from-dump", &dump("overlay-fail"), "--yes"], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("Terway is not needed") && run.stdout.contains("[ERROR "), "{run}");
    assert_eq!(o.calls(), Vec::<String>::new());
}

#[test]
fn ignored_checks_let_it_install() {
    let o = onectl();
    let run = o.run(
        &[
            "install",
            "--from-dump",
            &dump("bgp-fail"),
            "--yes",
            "--force",
            "--ignore-preflight-errors",
            "OnPremCNIExcludedFromCloud,RamSecret",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(o.calls().len(), 2);
}
