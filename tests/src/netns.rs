//! Network namespaces that clean up after themselves, veth pairs between
//! them, and guards for processes running inside them.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::system::{describe, failure_message, require_program, run_checked};

/// Distinguishes namespaces created by one test process (tests run in
/// parallel threads, so the pid alone is not unique).
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long teardown waits for killed processes to leave a namespace.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Pids of processes spawned into a namespace whose guards are still alive.
type Registry = Arc<Mutex<Vec<u32>>>;

/// A network namespace, deleted on drop (also while unwinding from a panic)
/// together with every process still running in it.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    children: Registry,
}

impl NetNs {
    /// Creates `thtest-<prefix>-<pid>-<counter>` and brings `lo` up in it.
    ///
    /// A stale namespace of the same name (left by a killed earlier run that
    /// had the same pid) is deleted first.
    pub fn new(prefix: &str) -> NetNs {
        assert!(
            !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "namespace prefix must be non-empty ASCII letters, digits, '-' or '_', got {prefix:?}"
        );
        let name =
            format!("thtest-{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        if ns_path(&name).exists() {
            if let Err(e) = teardown(&name, &[]) {
                panic!("cannot remove stale namespace {name}: {e}");
            }
        }
        run_checked(Command::new(ip_program()).args(["netns", "add", &name]));
        // From here on the guard exists, so a failure below still deletes it.
        let ns = NetNs { name, children: Registry::default() };
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>` with `args` split on whitespace; panics with
    /// the command, stdout and stderr on failure.
    pub fn ip(&self, args: &str) {
        self.ip_args(&args.split_whitespace().collect::<Vec<_>>());
    }

    /// Like [`NetNs::ip`], for arguments that contain spaces.
    pub fn ip_args(&self, args: &[&str]) {
        run_checked(self.ip_command().args(args));
    }

    /// Runs `ip -n <ns> <args>` and returns its stdout, panicking on failure.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let output = run_checked(self.ip_command().args(args));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Feeds `lines` (one `ip` command per line, without the leading `ip`) to
    /// `ip -n <ns> -batch -`: one process instead of one per command, which
    /// is what makes loading hundreds of thousands of routes feasible.
    ///
    /// Stops at the first failing line and panics with ip's stderr (which
    /// names the line); the input itself is left out of the message.
    pub fn ip_batch(&self, lines: &str) {
        let mut cmd = self.ip_command();
        cmd.args(["-batch", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(&cmd)));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let output = std::thread::scope(|s| {
            // Written from another thread so that ip filling its output
            // pipes cannot deadlock against us filling its input pipe.
            let writer = s.spawn(move || stdin.write_all(lines.as_bytes()));
            let output = child.wait_with_output();
            // A write error (EPIPE) only means ip quit early; its exit status
            // and stderr below say why.
            let _ = writer.join();
            output
        })
        .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", describe(&cmd)));
        if !output.status.success() {
            panic!("{}", failure_message(&cmd, &output));
        }
    }

    /// Runs `program` inside the namespace (`ip netns exec`) to completion.
    /// A non-zero exit is returned, not a panic: callers often probe.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = self.exec_command(program, args);
        cmd.stdin(Stdio::null());
        cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(&cmd)))
    }

    /// Starts a long-running `program` inside the namespace. It is killed
    /// (SIGKILL) and reaped when the guard or the namespace is dropped,
    /// whichever comes first. Its stdout and stderr go to the test's.
    pub fn spawn(&self, program: &str, args: &[&str]) -> ChildGuard {
        self.spawn_with(program, args, |_| {})
    }

    /// Like [`NetNs::spawn`], with stdout and stderr appended to `log` so a
    /// failing test can show what a daemon said.
    pub fn spawn_logged(&self, program: &str, args: &[&str], log: &Path) -> ChildGuard {
        self.spawn_logged_env(program, args, &[], log)
    }

    /// Like [`NetNs::spawn_logged`], with extra environment variables (e.g.
    /// `KUBECONFIG` for a process that talks to the test's API server).
    pub fn spawn_logged_env(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> ChildGuard {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log file {}: {e}", log.display()));
        let file2 = file.try_clone().unwrap_or_else(|e| panic!("cannot duplicate log file handle: {e}"));
        self.spawn_with(program, args, |cmd| {
            cmd.stdout(file).stderr(file2).envs(env.iter().copied());
        })
    }

    fn spawn_with(&self, program: &str, args: &[&str], configure: impl FnOnce(&mut Command)) -> ChildGuard {
        let mut cmd = self.exec_command(program, args);
        cmd.stdin(Stdio::null());
        configure(&mut cmd);
        // Hold the lock across spawn so a concurrent drop of the namespace
        // cannot miss the new pid.
        let mut registry = lock(&self.children);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", describe(&cmd)));
        registry.push(child.id());
        drop(registry);
        // `ip netns exec` enters the namespace after it starts: until it has,
        // a teardown would neither see nor kill it (a loaded machine made
        // that race real). Return once it is in, or gone.
        let ns_ino = std::fs::metadata(ns_path(&self.name)).map(|m| m.ino()).ok();
        let deadline = Instant::now() + KILL_GRACE;
        while ns_ino.is_some()
            && pid_netns_ino(child.id()) != ns_ino
            && matches!(child.try_wait(), Ok(None))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        ChildGuard { child, registry: Some(Arc::clone(&self.children)) }
    }

    fn ip_command(&self) -> Command {
        let mut cmd = Command::new(ip_program());
        cmd.args(["-n", &self.name]);
        cmd
    }

    fn exec_command(&self, program: &str, args: &[&str]) -> Command {
        // `ip netns exec` setns()es and then execs `program`, so the child's
        // pid is the program's own pid.
        let mut cmd = Command::new(ip_program());
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let registered = lock(&self.children).clone();
        if let Err(e) = teardown(&self.name, &registered) {
            // Never panic here: this may run while unwinding from a test panic.
            eprintln!("terway-hybrid-testkit: cleaning up namespace {}: {e}", self.name);
        }
    }
}

/// A child process that is killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    /// The spawning namespace's registry, to deregister from on drop.
    registry: Option<Registry>,
}

impl ChildGuard {
    /// Guards a child that was not started through [`NetNs::spawn`].
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child, registry: None }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let pid = self.child.id();
        // Deregister before reaping: once reaped the pid may be reused, and
        // the namespace must not kill a stranger.
        if let Some(registry) = &self.registry {
            lock(registry).retain(|&p| p != pid);
        }
        // Errors mean the child is already gone, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Joins `a` and `b` with a veth pair: `a_if` in `a` with `a_cidr`, `b_if`
/// in `b` with `b_cidr`, both up.
pub fn veth_pair(a: &NetNs, a_if: &str, a_cidr: &str, b: &NetNs, b_if: &str, b_cidr: &str) {
    // Creating the peer directly in `b` avoids a name clash with whatever
    // the creating namespace already has.
    a.ip_args(&["link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
    a.ip_args(&["addr", "add", a_cidr, "dev", a_if]);
    b.ip_args(&["addr", "add", b_cidr, "dev", b_if]);
    a.ip_args(&["link", "set", a_if, "up"]);
    b.ip_args(&["link", "set", b_if, "up"]);
}

/// The `ip` binary, resolved once (it may live in /usr/sbin, off `PATH`).
fn ip_program() -> &'static Path {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| require_program("ip", "iproute2"))
}

fn ns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// A poisoned lock only means another thread panicked while holding it; the
/// pid list is still valid, and cleanup must go on regardless.
fn lock(registry: &Mutex<Vec<u32>>) -> MutexGuard<'_, Vec<u32>> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills `registered` and every other process in namespace `name`, then
/// deletes it. Without the kill a lingering process would keep the
/// namespace (and its interfaces and routes) alive after `ip netns del`.
fn teardown(name: &str, registered: &[u32]) -> Result<(), String> {
    let ns_ino = std::fs::metadata(ns_path(name))
        .map_err(|e| format!("namespace file {}: {e}", ns_path(name).display()))?
        .ino();
    for &pid in registered {
        // The pid was checked to still live in this namespace, so a reused
        // pid of an unrelated process is never hit.
        if pid_netns_ino(pid) == Some(ns_ino) {
            sigkill(pid);
        }
    }
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        let pids = ns_pids(name)?;
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("processes {pids:?} survived SIGKILL"));
        }
        pids.into_iter().for_each(sigkill);
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Command::new(ip_program())
        .args(["netns", "del", name])
        .output()
        .map_err(|e| format!("cannot run ip netns del: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ip netns del {name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(())
}

/// The processes inside namespace `name` (zombies do not show up).
fn ns_pids(name: &str) -> Result<Vec<u32>, String> {
    let output = Command::new(ip_program())
        .args(["netns", "pids", name])
        .output()
        .map_err(|e| format!("cannot run ip netns pids: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ip netns pids {name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// The inode of the network namespace `pid` is in (the N of `net:[N]`).
fn pid_netns_ino(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn sigkill(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        // ESRCH (already gone) is fine.
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
    }
}
