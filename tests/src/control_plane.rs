//! A real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok, built from their Go
//! modules by `scripts/control-plane`), one per test binary.
//!
//! It is started on first use and stopped by the script's watchdog when the
//! test process ends, whatever way it ends: a test binary cannot run code at
//! exit, so the fixture does not try. Tests share it and keep out of each
//! other's way by working in their own namespaces and node names
//! ([`unique_name`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::netns::{ChildGuard, NetNs};
use crate::system::{describe, failure_message, require_program};
use crate::wait::wait_for_described;

/// Where the repository is: `scripts/control-plane` and `deploy/` live there.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the testkit lives in <repo>/tests").to_path_buf()
}

/// The shipped example dump `examples/<name>/`, which the controller's tests
/// load and serve.
pub fn example_dir(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// The running control plane of this test binary.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    server: String,
    port: u16,
    kubectl: PathBuf,
    installed: OnceLock<()>,
    /// When kube-apiserver was restarted: (from, until) in the audit log's
    /// time format.
    restarts: std::sync::Mutex<Vec<(String, String)>>,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();
static NAMES: AtomicU32 = AtomicU32::new(0);

/// A DNS-1123 name unique within this test run: `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NAMES.fetch_add(1, Ordering::Relaxed))
}

impl ControlPlane {
    /// The control plane of this test binary, built (cached after the first
    /// time) and started on first use. Panics with the script's output when
    /// either fails: a test that needs a cluster must never skip.
    pub fn shared() -> &'static ControlPlane {
        SHARED.get_or_init(ControlPlane::start)
    }

    fn start() -> ControlPlane {
        require_program("socat", "socat");
        let script = repo_root().join("scripts/control-plane");
        script_output(Command::new(&script).arg("build"));
        let dir = tempfile::Builder::new()
            .prefix("thcp-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the control plane's directory: {e}"))
            .keep();
        script_output(
            Command::new(&script).arg("up").arg(&dir).arg("--owner").arg(std::process::id().to_string()),
        );
        let server = read(&dir.join("server")).trim().to_owned();
        let port = server.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("{}: not an https://127.0.0.1:PORT address: {server:?}", dir.join("server").display())
        });
        let bin = PathBuf::from(script_output(Command::new(&script).arg("bin-dir")).trim());
        let kubectl = bin.join("kubectl");
        assert!(kubectl.is_file(), "no kubectl in {}: run scripts/control-plane build", bin.display());
        ControlPlane { dir, server, port, kubectl, installed: OnceLock::new(), restarts: Default::default() }
    }

    /// The directory with the certificates, kubeconfigs, logs and audit log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A kubeconfig for `system:masters`.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// The kubectl built from the same Kubernetes module as the server.
    pub fn kubectl_program(&self) -> &Path {
        &self.kubectl
    }

    /// kubectl as admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", self.admin_kubeconfig()).stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl as admin and returns its stdout; panics with the command,
    /// stdout and stderr unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut cmd = self.kubectl();
        cmd.args(args);
        let output = run(&mut cmd);
        if !output.status.success() {
            panic!("{}", failure_message(&cmd, &output));
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Applies `yaml` (or JSON) as admin (server-side, field manager `test`).
    pub fn apply(&self, yaml: &str) {
        self.apply_as("test", yaml, false);
    }

    /// Server-side apply as admin under `field_manager`, of the `status`
    /// subresource when `status` is set: e.g. a report written as its agent
    /// writes it.
    pub fn apply_as(&self, field_manager: &str, yaml: &str, status: bool) {
        let mut cmd = self.kubectl();
        cmd.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            field_manager,
            "-f",
            "-",
        ]);
        if status {
            cmd.arg("--subresource=status");
        }
        cmd.stdin(Stdio::piped());
        let output = run_with_stdin(&mut cmd, yaml);
        if !output.status.success() {
            panic!("{}\n--- input ---\n{yaml}", failure_message(&cmd, &output));
        }
    }

    /// Stops one component (`kube-apiserver`, `kwok`, ...) and starts it again
    /// with the same flags; for kube-apiserver, returns once it is ready.
    pub fn restart(&self, component: &str) {
        let from = utc_now(0);
        script_output(
            Command::new(repo_root().join("scripts/control-plane"))
                .arg("restart")
                .arg(&self.dir)
                .arg(component),
        );
        // A restarted API server answers 403 to everyone for a moment, until
        // its RBAC caches are filled; requests then are not "normal operation".
        self.restarts.lock().unwrap_or_else(|e| e.into_inner()).push((from, utc_now(10)));
    }

    /// `events` without those made while kube-apiserver was restarting (and
    /// 10 s after it was ready again): what "normal operation" means.
    pub fn outside_restarts(&self, events: Vec<AuditEvent>) -> Vec<AuditEvent> {
        let windows = self.restarts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        events
            .into_iter()
            .filter(|e| !windows.iter().any(|(from, until)| &e.time >= from && &e.time <= until))
            .collect()
    }

    /// Installs terway-hybrid once per control plane by running the install
    /// commands of README.md ("Install on a cluster") as they are written,
    /// with this control plane's kubectl first on `PATH`. The Prometheus
    /// Operator's CRDs go in first, as README assumes for deploy/monitoring.
    pub fn install(&self) {
        self.installed.get_or_init(|| {
            let crds = script_output(Command::new(repo_root().join("scripts/control-plane")).arg("crd-dir"));
            self.kubectl_ok(&["apply", "--server-side", "-f", crds.trim()]);
            let mut commands = vec!["kubectl wait --for condition=Established --timeout 60s \
                 crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com"
                .to_owned()];
            commands.extend(readme_install_commands());
            for command in commands {
                let mut cmd = Command::new("bash");
                let path = format!(
                    "{}:{}",
                    self.kubectl.parent().expect("kubectl has a directory").display(),
                    std::env::var("PATH").unwrap_or_default()
                );
                cmd.args(["-euo", "pipefail", "-c", &command])
                    .current_dir(repo_root())
                    .env("PATH", path)
                    .env("KUBECONFIG", self.admin_kubeconfig())
                    .stdin(Stdio::null());
                // `kubectl wait` fails instead of waiting when it reads a CRD
                // the API server has not yet given conditions (`conditions:
                // null`); README's troubleshooting says to run it again, and
                // so does this, a few times.
                let mut output = run(&mut cmd);
                for _ in 0..5 {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    if output.status.success()
                        || !command.starts_with("kubectl wait")
                        || !is_null_conditions(&stderr)
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    output = run(&mut cmd);
                }
                if !output.status.success() {
                    panic!("README's install command failed:\n{command}\n{}", failure_message(&cmd, &output));
                }
            }
        });
    }

    /// A client as `system:masters`.
    pub async fn admin_client(&self) -> kube::Client {
        client_from_kubeconfig(&self.admin_kubeconfig()).await
    }

    /// A token of ServiceAccount `namespace/name`, valid for an hour; bound to
    /// `pod` when given, so the server adds the pod's node to the requests'
    /// user (`authentication.kubernetes.io/node-name`), as for a real pod.
    pub fn token(&self, namespace: &str, name: &str, pod: Option<&BoundPod>) -> String {
        let mut args = vec!["create", "token", name, "--namespace", namespace, "--duration", "3600s"];
        if let Some(pod) = pod {
            args.extend([
                "--bound-object-kind",
                "Pod",
                "--bound-object-name",
                &pod.name,
                "--bound-object-uid",
                &pod.uid,
            ]);
        }
        self.kubectl_ok(&args).trim().to_owned()
    }

    /// Writes a kubeconfig that authenticates with `token` to `path`: for a
    /// process (an agent, the controller, the CLI) running as that account.
    pub fn token_kubeconfig(&self, token: &str, path: &Path) -> PathBuf {
        let ca = self.dir.join("pki/ca.crt");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: test\n  \
             context: {{cluster: test, user: sa}}\ncurrent-context: test\n",
            self.server,
            ca.display()
        );
        std::fs::write(path, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_path_buf()
    }

    /// Makes the API server reachable at `127.0.0.1:<port>` inside `ns`, the
    /// same address as on the host, without leaving loopback: a socat in the
    /// namespace relays to the unix socket that `up` serves on the host
    /// (unix sockets cross network namespaces). Stops when the guard drops.
    pub fn bridge_into(&self, ns: &NetNs) -> ChildGuard {
        let listen = format!("TCP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr", self.port);
        let connect = format!("UNIX-CONNECT:{}", self.dir.join("api.sock").display());
        let guard = ns.spawn("socat", &[&listen, &connect]);
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{}", self.port);
        wait_for_described(
            &format!("the API bridge in {}", ns.name()),
            Duration::from_secs(10),
            || ns.exec("bash", &["-c", &probe]).status.success().then_some(()),
            || "socat did not accept on 127.0.0.1 in the namespace",
        );
        guard
    }

    /// Every request the server audited so far (metadata level).
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        let text = read(&self.dir.join("audit.log"));
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|v| AuditEvent::from_json(&v))
            .collect()
    }
}

/// A pod a ServiceAccount token is bound to.
#[derive(Debug, Clone)]
pub struct BoundPod {
    pub name: String,
    pub uid: String,
}

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub user: String,
    pub user_agent: String,
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The request's path and query (`?dryRun=All`, `?fieldManager=...`).
    pub uri: String,
    /// When it completed, as the audit log writes it (RFC 3339, UTC, µs).
    pub time: String,
    pub code: u16,
}

impl AuditEvent {
    fn from_json(v: &serde_json::Value) -> AuditEvent {
        let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
        AuditEvent {
            user: s("/user/username"),
            user_agent: s("/userAgent"),
            verb: s("/verb"),
            resource: s("/objectRef/resource"),
            subresource: s("/objectRef/subresource"),
            namespace: s("/objectRef/namespace"),
            name: s("/objectRef/name"),
            uri: s("/requestURI"),
            time: s("/stageTimestamp"),
            code: v.pointer("/responseStatus/code").and_then(|c| c.as_u64()).unwrap_or(0) as u16,
        }
    }
}

/// kubectl's complaint when `kubectl wait` reads a fresh CRD whose status
/// has `conditions: null`.
fn is_null_conditions(stderr: &str) -> bool {
    stderr.contains("accessor error") || stderr.contains("cannot be filtered")
}

/// The `kubectl` commands of README.md's "Install on a cluster" code block,
/// in order, with comments removed and continued lines joined.
pub fn readme_install_commands() -> Vec<String> {
    let readme = read(&repo_root().join("README.md"));
    let section = readme
        .split("\n## Install on a cluster\n")
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no \"## Install on a cluster\" section"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("README.md's install section has no ```sh block"));
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                if current.starts_with("kubectl ") {
                    commands.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    assert!(
        commands.iter().any(|c| c.contains("apply -k deploy/crds")),
        "README.md's install block lost `kubectl apply -k deploy/crds`: {commands:?}"
    );
    commands
}

async fn client_from_kubeconfig(path: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot load kubeconfig {}: {e}", path.display()));
    kube::Client::try_from(config)
        .unwrap_or_else(|e| panic!("cannot build a client from {}: {e}", path.display()))
}

/// Now plus `plus_seconds`, in the audit log's time format
/// (`2026-11-30T10:31:08.572017Z`), so the two compare as strings.
fn utc_now(plus_seconds: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("+{plus_seconds} seconds"), "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run date: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).expect("write kubectl's stdin");
    child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {}: {e}", describe(cmd)))
}

/// Runs a `scripts/control-plane` subcommand; its progress goes to the
/// test's stderr, and a failure panics with everything it printed.
fn script_output(cmd: &mut Command) -> String {
    let output = run(cmd.stdin(Stdio::null()));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        panic!("{}", failure_message(cmd, &output));
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}
