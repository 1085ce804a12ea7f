//! Real BIRD 2 (Debian package `bird2`) running inside a [`NetNs`], and a
//! config generator for a Calico-like node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::netns::{ChildGuard, NetNs};
use crate::system::{failure_message, require_program};
use crate::wait::wait_for_described;

/// How long a freshly started BIRD may take to open its control socket.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `bird -f`, killed on drop; its control socket is removed then
/// too, as a cleanly stopped daemon would leave none behind.
#[derive(Debug)]
pub struct Bird {
    /// Behind a mutex so `&self` methods can notice a crashed daemon.
    child: Mutex<ChildGuard>,
    birdc: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    /// Holds the config and log; declared last so it outlives the daemon.
    _dir: tempfile::TempDir,
}

/// Starts `bird -f -c <conf> -s <socket_path>` inside `ns` and waits until it
/// answers on the socket.
///
/// The config is checked with `bird -p` first so a syntax error fails with
/// BIRD's own message. The socket's parent directory is created if missing.
/// Daemon output goes to a log file quoted in panic messages (configs from
/// [`calico_like_config`] log everything to stderr).
pub fn start(ns: &NetNs, config: &str, socket_path: &Path) -> Bird {
    let bird_bin = require_program("bird", "bird2");
    let birdc = require_program("birdc", "bird2");
    let dir = tempfile::Builder::new()
        .prefix("thtest-bird-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for BIRD: {e}"));
    let conf = dir.path().join("bird.conf");
    let log = dir.path().join("bird.log");
    std::fs::write(&conf, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));

    let check = Command::new(&bird_bin).arg("-p").arg("-c").arg(&conf).output();
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "BIRD rejects the config:\n{}\n--- config ---\n{config}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ),
        Err(e) => panic!("cannot run {}: {e}", bird_bin.display()),
    }

    if let Some(parent) = socket_path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    // A leftover socket from a killed run would make the readiness check
    // below talk to nobody; BIRD creates a fresh one.
    let _ = std::fs::remove_file(socket_path);

    let child = ns.spawn_logged(
        &path_str(&bird_bin),
        &["-f", "-c", &path_str(&conf), "-s", &path_str(socket_path)],
        &log,
    );
    let bird = Bird { child: Mutex::new(child), birdc, socket: socket_path.to_path_buf(), log, _dir: dir };
    wait_for_described(
        &format!("BIRD in {} to answer on {}", ns.name(), socket_path.display()),
        STARTUP_TIMEOUT,
        || {
            bird.assert_running();
            bird.try_birdc(&["show", "status"]).ok()
        },
        || bird.log_contents(),
    );
    bird
}

impl Bird {
    /// `birdc -s <socket> show protocols`.
    pub fn show_protocols(&self) -> String {
        self.birdc(&["show", "protocols"])
    }

    /// Runs `birdc -s <socket> <args>` and returns stdout; panics on failure.
    pub fn birdc(&self, args: &[&str]) -> String {
        self.try_birdc(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until every BGP protocol is `Established` (and there is at
    /// least one); panics with BIRD's view of the protocols otherwise.
    pub fn wait_established(&self, timeout: Duration) {
        wait_for_described(
            &format!("BGP sessions on {} to be Established", self.socket.display()),
            timeout,
            || {
                self.assert_running();
                let out = self.try_birdc(&["show", "protocols"]).ok()?;
                all_bgp_established(&out).then_some(())
            },
            || {
                let protocols = self.try_birdc(&["show", "protocols", "all"]).unwrap_or_else(|e| e);
                format!("{protocols}\n--- bird log ---\n{}", self.log_contents())
            },
        );
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// Everything BIRD wrote to stdout and stderr so far.
    fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    fn try_birdc(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.birdc);
        cmd.arg("-s").arg(&self.socket).args(args);
        let output = cmd.output().map_err(|e| format!("cannot run birdc: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        // birdc exits 0 even when it cannot connect, so look at what it said.
        if !output.status.success() || stdout.contains("Unable to connect") {
            return Err(failure_message(&cmd, &output));
        }
        Ok(stdout)
    }

    /// Panics with the log if the daemon has exited: waiting any longer
    /// would only turn a clear crash into a vague timeout.
    fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("BIRD exited ({status})\n--- bird log ---\n{}", self.log_contents());
        }
    }

    fn exited(&self) -> Option<ExitStatus> {
        self.lock_child().child_mut().try_wait().ok().flatten()
    }

    fn lock_child(&self) -> MutexGuard<'_, ChildGuard> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.child_mut().kill();
        let _ = child.child_mut().wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// True if `show protocols` output lists at least one BGP protocol and all
/// of them are Established.
fn all_bgp_established(show_protocols: &str) -> bool {
    let bgp: Vec<&str> =
        show_protocols.lines().filter(|line| line.split_whitespace().nth(1) == Some("BGP")).collect();
    !bgp.is_empty() && bgp.iter().all(|line| line.contains("Established"))
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display())).to_owned()
}

/// A BIRD 2 config for a Calico-like node.
///
/// - `static_blocks` announces a blackhole route per `local_prefixes` entry,
///   like Calico announcing its IPAM blocks;
/// - `kernel1` exports every route, so peers' blocks land in the kernel as
///   `proto bird` (and, as on a real Calico node, the node's own blocks as
///   `blackhole ... proto bird`);
/// - `peer1` is a direct iBGP session to `neighbor_ip` in AS `asn`, with
///   short timers so it comes up within seconds.
pub fn calico_like_config(router_id: &str, asn: u32, neighbor_ip: &str, local_prefixes: &[&str]) -> String {
    bgp_config(router_id, asn, &[("peer1".to_owned(), neighbor_ip)], local_prefixes)
}

/// Like [`calico_like_config`], with one iBGP session to each of
/// `neighbor_ips`, named as Calico names its node-to-node mesh sessions
/// (`Mesh_192_168_88_2`).
pub fn calico_mesh_config(
    router_id: &str,
    asn: u32,
    neighbor_ips: &[&str],
    local_prefixes: &[&str],
) -> String {
    let peers: Vec<(String, &str)> =
        neighbor_ips.iter().map(|ip| (format!("Mesh_{}", ip.replace(['.', ':'], "_")), *ip)).collect();
    bgp_config(router_id, asn, &peers, local_prefixes)
}

fn bgp_config(router_id: &str, asn: u32, peers: &[(String, &str)], local_prefixes: &[&str]) -> String {
    let mut routes = String::new();
    for prefix in local_prefixes {
        writeln!(routes, "  route {prefix} blackhole;").expect("writing to a String");
    }
    let mut sessions = String::new();
    for (name, neighbor_ip) in peers {
        write!(
            sessions,
            r#"
protocol bgp {name} {{
  local as {asn};
  neighbor {neighbor_ip} as {asn};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 1;
  ipv4 {{
    import all;
    export where proto = "static_blocks";
  }};
}}
"#
        )
        .expect("writing to a String");
    }
    format!(
        r#"# Generated by terway-hybrid-testkit: a Calico-like node.
log stderr all;
router id {router_id};

protocol device {{
}}

protocol kernel kernel1 {{
  learn off;
  ipv4 {{
    import none;
    export all;
  }};
}}

protocol static static_blocks {{
  ipv4;
{routes}}}
{sessions}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_established_sessions() {
        let up = "BIRD 2.0.12 ready.\n\
                  Name       Proto      Table      State  Since         Info\n\
                  device1    Device     ---        up     10:00:00.000  \n\
                  peer1      BGP        ---        up     10:00:01.000  Established   \n";
        assert!(all_bgp_established(up));
        let connecting = up.replace("up     10:00:01.000  Established", "start  10:00:01.000  Connect");
        assert!(!all_bgp_established(&connecting));
        let no_bgp = "Name Proto Table State Since Info\ndevice1 Device --- up 10:00:00.000\n";
        assert!(!all_bgp_established(no_bgp));
    }

    #[test]
    fn config_lists_every_prefix() {
        let conf = calico_like_config("10.0.0.1", 64512, "10.0.0.2", &["10.244.1.0/26", "10.244.1.64/26"]);
        assert!(conf.contains("route 10.244.1.0/26 blackhole;"));
        assert!(conf.contains("route 10.244.1.64/26 blackhole;"));
        assert!(conf.contains("neighbor 10.0.0.2 as 64512;"));
    }

    #[test]
    fn mesh_config_has_a_session_per_neighbor() {
        let conf = calico_mesh_config("10.0.0.1", 64512, &["10.0.0.2", "10.0.0.3"], &["10.244.0.0/26"]);
        assert!(conf.contains("protocol bgp Mesh_10_0_0_2 {"));
        assert!(conf.contains("neighbor 10.0.0.3 as 64512;"));
        assert_eq!(conf.matches("protocol bgp").count(), 2);
    }
}
